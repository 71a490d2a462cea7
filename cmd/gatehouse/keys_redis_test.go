package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/e2e/harness"
	"github.com/gatehouse-dev/gatehouse/secrets"
)

// TestRedisReplicasShareSealedKeys runs two replicas (own data_dirs, one
// master key file, one real redis-server) at once, then checks that both
// print the same user CA and known_hosts line, that every key lives in
// Redis, and that neither a DUMP nor a GET of any Redis key nor any file
// of either data_dir holds a private key in the clear.
func TestRedisReplicasShareSealedKeys(t *testing.T) {
	srv := harness.StartRedisWith(t, harness.RedisOptions{RequirePassword: true})
	keyFile := filepath.Join(t.TempDir(), "master.key")
	if _, err := secrets.CreateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	var paths, dirs []string
	for _, name := range []string{"a", "b"} {
		dir := filepath.Join(t.TempDir(), name)
		dirs = append(dirs, dir)
		paths = append(paths, writeConfig(t, strings.Replace(validYAML(dir), `  admin: "127.0.0.1:0"`, "  admin: \"127.0.0.1:0\"\n  ssh: \"127.0.0.1:0\"", 1)+
			fakeIssuer(t).ssoYAML+"routes: [{name: app, host: app.test, upstream: \"http://127.0.0.1:9\", allow: {groups: [eng]}}]\n"+
			"secrets: {master_key_file: "+keyFile+"}\n"+
			"redis: {addr: \""+srv.Addr+"\", password_file: "+srv.PasswordFile+"}\n"))
	}
	_, stopA := startServer(t, paths[0])
	_, stopB := startServer(t, paths[1])
	for _, stop := range []func() error{stopA, stopB} {
		if err := stop(); err != nil {
			t.Fatalf("serve on redis = %v", err)
		}
	}
	for _, args := range [][]string{{"--user-ca"}, {}} {
		var outs []string
		for _, p := range paths {
			var out, errb bytes.Buffer
			if code := run(append([]string{"ssh-config", "--config", p}, args...), &out, &errb); code != 0 {
				t.Fatalf("ssh-config %v = %d %q", args, code, &errb)
			}
			outs = append(outs, out.String())
		}
		if outs[0] != outs[1] {
			t.Errorf("replicas differ in ssh-config %v:\n%s\n%s", args, outs[0], outs[1])
		}
	}

	cfg, err := config.LoadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.Open(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v := keyVault(cfg, st, kr, nil)
	var secretBytes [][]byte
	for _, s := range allKeySpecs() {
		s.New = nil // every key must exist already, in Redis
		plain, err := v.LoadOrCreate(t.Context(), s)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if k, err := gossh.ParseRawPrivateKey(plain); err == nil {
			plain = k.(*ed25519.PrivateKey).Seed()
		} else if raw, err := hex.DecodeString(strings.TrimSpace(string(plain))); err == nil {
			plain = raw
		}
		secretBytes = append(secretBytes, plain)
	}
	secretBytes = append(secretBytes, ringKeyMaterial(t, st, kr)...)

	rc := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password})
	defer rc.Close()
	keys, err := rc.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	sealedKeys := 0
	for _, k := range keys {
		dump, err := rc.Dump(t.Context(), k).Result()
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		checkNoKeys(t, "DUMP "+k, []byte(dump), secretBytes)
		if typ, _ := rc.Type(t.Context(), k).Result(); typ == "string" {
			b, _ := rc.Get(t.Context(), k).Bytes()
			checkNoKeys(t, "GET "+k, b, secretBytes)
		}
		if strings.HasPrefix(k, "gatehouse:keys/") {
			sealedKeys++
		}
	}
	if sealedKeys != len(allKeySpecs()) {
		t.Errorf("redis holds %d sealed keys under keys/, want %d (%q)", sealedKeys, len(allKeySpecs()), keys)
	}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 || strings.Contains(p, "/tls/") {
				return err
			}
			if strings.HasSuffix(p, ".sealed") {
				t.Errorf("%s: a replica on Redis keeps its keys in Redis, not in data_dir", p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			checkNoKeys(t, p, b, secretBytes)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
