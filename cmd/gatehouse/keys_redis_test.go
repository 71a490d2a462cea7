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
// master key file, one real redis-server), the first a single host that
// moved to Redis, then checks that both print the same user CA (the
// single host's) and known_hosts line, that every key lives in
// Redis, and that neither a DUMP nor a GET of any Redis key nor any file
// of either data_dir holds a private key in the clear.
func TestRedisReplicasShareSealedKeys(t *testing.T) {
	srv := harness.StartRedisWith(t, harness.RedisOptions{RequirePassword: true})
	keyFile := filepath.Join(t.TempDir(), "master.key")
	if _, err := secrets.CreateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	var paths, dirs []string
	var single string // replica a's config before it moved to Redis
	for _, name := range []string{"a", "b"} {
		dir := filepath.Join(t.TempDir(), name)
		dirs = append(dirs, dir)
		base := strings.Replace(validYAML(dir), `  admin: "127.0.0.1:0"`, "  admin: \"127.0.0.1:0\"\n  ssh: \"127.0.0.1:0\"", 1) +
			fakeIssuer(t).ssoYAML + "routes: [{name: app, host: app.test, upstream: \"http://127.0.0.1:9\", allow: {groups: [eng]}}]\n" +
			"secrets: {master_key_file: " + keyFile + "}\n"
		if single == "" {
			single = writeConfig(t, base)
		}
		paths = append(paths, writeConfig(t, base+"redis: {addr: \""+srv.Addr+"\", password_file: "+srv.PasswordFile+"}\n"))
	}
	// Replica a was a single host: its user CA is a sealed file, which
	// targets already trust. Serving on Redis imports it on first use.
	var before, errb bytes.Buffer
	if code := run([]string{"ssh-config", "--config", single, "--user-ca"}, &before, &errb); code != 0 {
		t.Fatalf("ssh-config on the single host = %d %q", code, &errb)
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
		if len(args) == 1 && outs[1] != before.String() {
			t.Errorf("replica b's user CA %q is not the one the single host had, %q", outs[1], &before)
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
	st, err := openStore(cfg, nil)
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
			// Only the single host's imported user CA stays, sealed.
			if strings.HasSuffix(p, ".sealed") && !strings.HasSuffix(p, "a/ssh/user_ca_ed25519.sealed") {
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

	// Rotation on Redis: rekey reseals the keys in the store; the old
	// master key can then go.
	newKey := filepath.Join(t.TempDir(), "new.key")
	if _, err := secrets.CreateKeyFile(newKey); err != nil {
		t.Fatal(err)
	}
	cfgText, _ := os.ReadFile(paths[1])
	rotating := writeConfig(t, strings.Replace(string(cfgText), "secrets: {master_key_file: "+keyFile+"}",
		"secrets: {master_key_file: "+newKey+", previous_master_key_files: ["+keyFile+"]}", 1))
	newOnly := writeConfig(t, strings.Replace(string(cfgText), keyFile, newKey, 1))
	var out, errb2 bytes.Buffer
	if code := run([]string{"rekey", "--config", rotating}, &out, &errb2); code != 0 ||
		!strings.Contains(out.String(), "Resealed 6 keys (SSH, recording), 2 stored key rings") {
		t.Fatalf("rekey on redis = %d %q %q", code, &out, &errb2)
	}
	out.Reset()
	if code := run([]string{"ssh-config", "--config", newOnly, "--user-ca"}, &out, &errb2); code != 0 || out.String() != before.String() {
		t.Errorf("after rekey, the new master key alone: %d %q %q", code, &out, &errb2)
	}
}
