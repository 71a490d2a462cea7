package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// TestRedisValidation checks each redis key's rule.
func TestRedisValidation(t *testing.T) {
	ok := Redis{Addr: "redis.internal:6379", Prefix: DefaultRedisPrefix}
	tests := []struct {
		name string
		edit func(r *Redis)
		want string // path of the problem; "" for none beyond the refusal
	}{
		{"valid", func(*Redis) {}, ""},
		{"full", func(r *Redis) {
			r.Username, r.PasswordFile, r.DB = "gatehouse", "/etc/gatehouse/redis-password", 15
			r.TLS = &RedisTLS{CAFile: "/etc/gatehouse/redis-ca.pem", ServerName: "redis.internal"}
		}, ""},
		{"tls with system roots", func(r *Redis) { r.TLS = &RedisTLS{} }, ""},
		{"tls server name ip", func(r *Redis) { r.TLS = &RedisTLS{ServerName: "10.0.0.9"} }, ""},
		{"no addr", func(r *Redis) { r.Addr = "" }, "redis.addr"},
		{"addr without port", func(r *Redis) { r.Addr = "redis.internal" }, "redis.addr"},
		{"addr without host", func(r *Redis) { r.Addr = ":6379" }, "redis.addr"},
		{"username with space", func(r *Redis) { r.Username = "gate house" }, "redis.username"},
		{"username control", func(r *Redis) { r.Username = "gate\x00" }, "redis.username"},
		{"relative password file", func(r *Redis) { r.PasswordFile = "redis-password" }, "redis.password_file"},
		{"negative db", func(r *Redis) { r.DB = -1 }, "redis.db"},
		{"db 16", func(r *Redis) { r.DB = 16 }, "redis.db"},
		{"relative ca", func(r *Redis) { r.TLS = &RedisTLS{CAFile: "ca.pem"} }, "redis.tls.ca_file"},
		{"bad server name", func(r *Redis) { r.TLS = &RedisTLS{ServerName: "Redis_Host!"} }, "redis.tls.server_name"},
		{"long prefix", func(r *Redis) { r.Prefix = strings.Repeat("g", maxRedisPrefix+1) }, "redis.prefix"},
		{"prefix with space", func(r *Redis) { r.Prefix = "gate house:" }, "redis.prefix"},
		{"sentinel", func(r *Redis) {
			r.Addr = ""
			r.Sentinel = &Sentinel{MasterName: "gh", Addrs: []string{"s1:26379", "s2:26379"}, PasswordFile: "/etc/gatehouse/sentinel-password"}
		}, ""},
		{"sentinel and addr", func(r *Redis) { r.Sentinel = &Sentinel{MasterName: "gh", Addrs: []string{"s1:26379"}} }, "redis.addr"},
		{"sentinel without master", func(r *Redis) { r.Addr, r.Sentinel = "", &Sentinel{Addrs: []string{"s1:26379"}} }, "redis.sentinel.master_name"},
		{"sentinel without addrs", func(r *Redis) { r.Addr, r.Sentinel = "", &Sentinel{MasterName: "gh"} }, "redis.sentinel.addrs"},
		{"sentinel bad addr", func(r *Redis) { r.Addr, r.Sentinel = "", &Sentinel{MasterName: "gh", Addrs: []string{"s1"}} }, "redis.sentinel.addrs[0]"},
		{"sentinel relative password", func(r *Redis) {
			r.Addr, r.Sentinel = "", &Sentinel{MasterName: "gh", Addrs: []string{"s1:26379"}, PasswordFile: "pw"}
		}, "redis.sentinel.password_file"},
		{"sentinel tls without name", func(r *Redis) {
			r.Addr, r.Sentinel, r.TLS = "", &Sentinel{MasterName: "gh", Addrs: []string{"s1:26379"}}, &RedisTLS{}
		}, "redis.tls.server_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.edit(&r)
			v := &validator{}
			v.redis(r)
			var got []string
			for _, p := range v.ps {
				got = append(got, p.Path)
			}
			var want []string
			if tt.want != "" {
				want = []string{tt.want}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nall: %v", diff, v.ps)
			}
		})
	}
}

// TestRedisKeysParse checks that every redis key is known and read from
// YAML (a full section loads) and that the prefix defaults.
func TestRedisKeysParse(t *testing.T) {
	section := `
redis:
  addr: "redis.internal:6379"
  username: gatehouse
  password_file: /etc/gatehouse/redis-password
  db: 2
  tls: {ca_file: /etc/gatehouse/redis-ca.pem, server_name: redis.internal}
`
	_, err := Load([]byte(mustRead(t, "testdata/valid.yaml") + section))
	if err != nil {
		t.Fatalf("Load = %v, want the redis section accepted", err)
	}
	var c Config
	if err := yaml.Unmarshal([]byte(section), &c); err != nil {
		t.Fatal(err)
	}
	c.ApplyDefaults()
	want := &Redis{
		Addr: "redis.internal:6379", Username: "gatehouse", PasswordFile: "/etc/gatehouse/redis-password", DB: 2,
		TLS:    &RedisTLS{CAFile: "/etc/gatehouse/redis-ca.pem", ServerName: "redis.internal"},
		Prefix: DefaultRedisPrefix,
	}
	if diff := cmp.Diff(want, c.Redis); diff != "" {
		t.Errorf("redis (-want +got):\n%s", diff)
	}
}
