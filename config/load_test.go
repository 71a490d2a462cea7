package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoadValid(t *testing.T) {
	c, err := Load([]byte(mustRead(t, "testdata/valid.yaml")))
	if err != nil {
		t.Fatalf("Load(valid.yaml) = %v", err)
	}
	if got, want := c.Routes[0].MFAMaxAge.D(), time.Hour; got != want {
		t.Errorf("routes[0].mfa_max_age = %v, want %v", got, want)
	}
	if got, want := c.Targets[0].Retention.D(), 90*24*time.Hour; got != want {
		t.Errorf("targets[0].retention = %v, want %v", got, want)
	}
	if c.Targets[0].Record != RecordRequired {
		t.Errorf("targets[0].record = %q, want %q (accepted now that recording exists)", c.Targets[0].Record, RecordRequired)
	}
	if len(c.Recording.Recipients) != 1 || len(c.Recording.LegalHold) != 1 || c.Recording.LegalHold[0] != "carol@example.com" {
		t.Errorf("recording = %+v", c.Recording)
	}
	if diff := cmp.Diff([]string{"ubuntu", "postgres"}, c.Targets[0].Logins); diff != "" {
		t.Errorf("logins (-want +got):\n%s", diff)
	}
}

// TestLoadProblems edits the valid config in one place at a time and checks
// that the problem is reported at the right path and line.
func TestLoadProblems(t *testing.T) {
	valid := mustRead(t, "testdata/valid.yaml")
	tests := []struct {
		name      string
		old, new  string
		wantPath  string
		wantLine  int
		wantInMsg string
	}{
		{"upstream scheme", "upstream: http://10.0.0.5:3000", "upstream: ftp://10.0.0.5:3000", "routes[0].upstream", 23, "scheme must be http or https"},
		{"unknown key typo", "    host: grafana.example.com", "    hosst: grafana.example.com", "routes[0].hosst", 22, `unknown key (did you mean "host"?)`},
		{"unknown top key", "data_dir: /var/lib/gatehouse", "data_dir: /var/lib/gatehouse\nallow_all: true", "allow_all", 12, "unknown key"},
		{"bad duration", "mfa_max_age: 1h", "mfa_max_age: 1 hour", "routes[0].mfa_max_age", 25, "invalid duration"},
		{"negative duration", "max_age: 12h", "max_age: -1h", "mfa.max_age", 19, "negative"},
		{"public url http", "public_url: https://gate.example.com", "public_url: http://gate.example.com", "public_url", 1, "https URL"},
		{"public url ip", "public_url: https://gate.example.com", "public_url: https://10.1.1.1", "public_url", 1, "not an IP"},
		{"tls mode", "mode: acme", "mode: letsencrypt", "tls.mode", 8, "must be acme, files or self_signed"},
		{"min version", `min_version: "1.2"`, `min_version: "1.1"`, "tls.min_version", 9, "1.2"},
		{"relative data dir", "data_dir: /var/lib/gatehouse", "data_dir: var/lib", "data_dir", 11, "absolute"},
		{"relative secret", "client_secret_file: /etc/gatehouse/oidc-secret", "client_secret_file: oidc-secret", "sso.client_secret_file", 15, "absolute"},
		{"missing secret", "  client_secret_file: /etc/gatehouse/oidc-secret\n", "", "sso.client_secret_file", 12, "required"},
		{"no host key", `    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"` + "\n", "", "targets[0]", 27, "never trusted on first use"},
		{"bad host key", "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\"", "not-a-key\"", "targets[0].host_key", 29, "not an SSH public key"},
		{"two host keys", "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\"", "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\"", "targets[0].host_key", 29, "more than one key"},
		{"public url scheme case", "public_url: https://gate.example.com", "public_url: HTTPS://gate.example.com", "public_url", 1, "https URL"},
		{"public url no host", "public_url: https://gate.example.com", "public_url: https://:443", "public_url", 1, "https URL"},
		{"upstream no host", "upstream: http://10.0.0.5:3000", "upstream: http://:3000", "routes[0].upstream", 23, "no credentials"},
		{"upstream credentials", "upstream: http://10.0.0.5:3000", "upstream: http://u:p@10.0.0.5:3000", "routes[0].upstream", 23, "no credentials"},
		{"bad login", "logins: [ubuntu, postgres]", "logins: [ubuntu, \"root;rm\"]", "targets[0].logins[1]", 30, "invalid login"},
		{"bad forward", `forwards: ["10.0.0.7:5432"]`, `forwards: ["10.0.0.7"]`, "targets[0].forwards[0]", 33, "host:port"},
		{"mfa mode", "mfa: every_connection", "mfa: sometimes", "targets[0].mfa", 32, "every_connection"},
		{"redis addr", "data_dir: /var/lib/gatehouse", "data_dir: /var/lib/gatehouse\nredis: {addr: \"redis.internal\"}", "redis.addr", 12, "host:port"},
		{"record mode", "record: required ", "record: maybe ", "targets[0].record", 34, "required or off"},
		{"recording recipient", "[age1fxwp93vgzl8lsm29zue8wp4v75yd50lcy9hpy3qpkle7uxdc5evq5az2cw]", "[age1nope]", "recording.recipients[0]", 41, "not an age X25519 recipient"},
		{"legal hold email", "[carol@example.com]", "[carol]", "recording.legal_hold[0]", 42, "invalid email"},
		{"route host uppercase", "host: grafana.example.com", "host: Grafana.Example.com", "routes[0].host", 22, "lowercase"},
		{"route host is portal", "host: grafana.example.com", "host: gate.example.com", "routes[0].host", 22, "already used by public_url"},
		{"bad email", "emails: []", "emails: [not-an-email]", "routes[0].allow.emails[0]", 24, "invalid email"},
		{"domain with at", "email_domains: []", "email_domains: [\"@example.com\"]", "routes[0].allow.email_domains[0]", 24, "invalid domain"},
		{"listen port", `ssh: ":2222"`, `ssh: ":22222222"`, "listen.ssh", 4, "port"},
		{"webhook scheme", "url: https://siem.example/hook", "url: ftp://siem.example/hook", "audit.webhook.url", 39, "http or https"},
		{"alert failures", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}\n  alerts: {failures: -1}", "audit.alerts.failures", 40, "must be at least 1"},
		{"alert denials", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}\n  alerts: {denials: -5}", "audit.alerts.denials", 40, "must be at least 1"},
		{"alert window", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}\n  alerts: {failure_window: 30d}", "audit.alerts.failure_window", 40, "at most 24h"},
		{"alert unknown key", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}\n  alerts: {threshold: 3}", "audit.alerts.threshold", 40, "unknown key"},
		{"syslog network", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}\n  syslog: {network: http, address: \"h:514\"}", "audit.syslog.network", 40, "udp, tcp, unix or unixgram"},
		{"syslog address without network", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}\n  syslog: {address: \"h:514\"}", "audit.syslog.network", 40, "required with an address"},
		{"syslog tcp address", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}\n  syslog: {network: tcp, address: loghost}", "audit.syslog.address", 40, "host:port"},
		{"syslog unix path", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}", "webhook: {url: https://siem.example/hook, secret_file: /etc/gatehouse/hook-secret}\n  syslog: {network: unixgram, address: dev/log}", "audit.syslog.address", 40, "absolute socket path"},
		{"wrong type", "mfa_max_age: 1h", "mfa_max_age: [1h]", "routes[0].mfa_max_age", 25, "invalid duration"},
		{"int as string list", "logins: [ubuntu, postgres]", "logins: ubuntu", "targets[0].logins", 30, "cannot unmarshal"},
		{"duplicate key", "data_dir: /var/lib/gatehouse", "data_dir: /var/lib/gatehouse\ndata_dir: /tmp", "", 12, "already defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(valid, tt.old) {
				t.Fatalf("test edit %q not found in valid.yaml", tt.old)
			}
			doc := strings.Replace(valid, tt.old, tt.new, 1)
			_, err := Load([]byte(doc))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Load = %v, want Problems", err)
			}
			for _, p := range ps {
				if (tt.wantPath == "" || p.Path == tt.wantPath) && strings.Contains(p.Msg, tt.wantInMsg) {
					if p.Line != tt.wantLine {
						t.Errorf("problem %q at line %d, want line %d", p, p.Line, tt.wantLine)
					}
					return
				}
			}
			t.Errorf("Load problems = %q, want one at %s containing %q", ps.Error(), tt.wantPath, tt.wantInMsg)
		})
	}
}

// TestLoadReportsEverything checks that several problems come back together
// rather than one at a time.
func TestLoadReportsEverything(t *testing.T) {
	doc := `public_url: http://x
listen: {https: ":443"}
tls: {mode: files}
data_dir: rel
routes:
  - {name: A, host: a.example.com, upstream: "ftp://x"}
  - {name: b, host: a.example.com, upstream: "http://x", bogus: 1}
`
	_, err := Load([]byte(doc))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Load = %v, want Problems", err)
	}
	// The unknown key and the validation problems come back together.
	var paths []string
	for _, p := range ps {
		paths = append(paths, p.Path)
	}
	want := []string{"routes[1].bogus", "public_url", "tls.cert_file", "tls.key_file", "data_dir", "routes[0].name", "routes[0].upstream", "routes[1].host", "sso.issuer", "sso.client_id", "sso.client_secret_file"}
	for _, w := range want {
		found := false
		for _, p := range paths {
			found = found || p == w
		}
		if !found {
			t.Errorf("missing problem at %s; got %q", w, ps.Error())
		}
	}
}

func TestLoadEmptyAndGarbage(t *testing.T) {
	for _, doc := range []string{"", "   \n", "[1, 2", "- a\n- b\n", "just a string", "\x00\x01"} {
		if _, err := Load([]byte(doc)); err == nil {
			t.Errorf("Load(%q) = nil error, want an error", doc)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"12h", 12 * time.Hour, true},
		{"30d", 30 * 24 * time.Hour, true},
		{"1.5d", 0, false},
		{"d", 0, false},
		{"-3d", 0, false},
		{"99999999d", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(mustReadF(f, "testdata/valid.yaml")))
	f.Add([]byte("routes: [{name: a, host: b}]"))
	f.Add([]byte("mfa: {max_age: 9999999999d}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Load(data)
		if err == nil {
			// Whatever loads must also pass Validate: Load never returns an
			// unvalidated config.
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Load accepted a config that Validate rejects: %v", verr)
			}
		}
	})
}

func mustReadF(f *testing.F, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return string(b)
}
