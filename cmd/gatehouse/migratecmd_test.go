package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/store"
)

// TestMigrateStore copies a data_dir's store into a password-protected
// Redis and checks what arrived; then checks the refusals: a store held
// by serve, a Redis namespace already in use, a missing store.
func TestMigrateStore(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, validYAML(dir))
	srv := harness.StartRedisWith(t, harness.RedisOptions{RequirePassword: true})
	migrate := func(extra ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		args := append([]string{"migrate-store", "--config", path, "--to-redis", srv.Addr, "--password-file", srv.PasswordFile, "--db", "3"}, extra...)
		code := run(args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	// No store yet: refused rather than creating an empty one.
	if code, _, stderr := migrate(); code != 1 || !strings.Contains(stderr, "state.db") {
		t.Errorf("migrate-store without a store = %d %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("migrate-store created the store: %v", err)
	}

	// The host's keys: a sealed user CA (ssh-config made it) and a
	// recording key an older release left in the clear.
	var caOut, caErr bytes.Buffer
	if code := run([]string{"ssh-config", "--config", path, "--user-ca"}, &caOut, &caErr); code != 0 {
		t.Fatalf("ssh-config --user-ca = %d %q", code, &caErr)
	}
	indexKey := strings.Repeat("ab", 32)
	if err := os.WriteFile(filepath.Join(dir, "recording_index_key"), []byte(indexKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := store.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	for key, ttl := range map[string]time.Duration{"session/a": time.Hour, "lock/ann@example.com": 0, "webauthn/ann": 0} {
		if err := b.Set(ctx, key, []byte("v:"+key), ttl); err != nil {
			t.Fatal(err)
		}
	}
	// Held, as serve holds it: refused within the store's lock timeout.
	if code, _, stderr := migrate(); code != 1 || !strings.Contains(stderr, "held by a running gatehouse") {
		t.Errorf("migrate-store while the store is held = %d %q", code, stderr)
	}
	b.Close()

	code, stdout, stderr := migrate()
	if code != 0 {
		t.Fatalf("migrate-store = %d, stderr %q", code, stderr)
	}
	if !strings.HasPrefix(stdout, "Copied 3 keys (1 with an expiry)") || !strings.Contains(stdout, `db 3 prefix "gatehouse:"; skipped 0 expired keys. Copied 2 sealed secret keys`) {
		t.Errorf("migrate-store printed %q", stdout)
	}
	pw, _ := os.ReadFile(srv.PasswordFile)
	r, err := store.OpenRedis(store.RedisOptions{Addr: srv.Addr, Password: strings.TrimSpace(string(pw)), DB: 3, Prefix: "gatehouse:"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	kvs, err := r.List(ctx, "")
	if err != nil || len(kvs) != 5 || kvs[2].Key != "lock/ann@example.com" || string(kvs[2].Value) != "v:lock/ann@example.com" ||
		kvs[0].Key != "keys/recording_index_key" || kvs[1].Key != "keys/ssh/user_ca_ed25519" {
		t.Errorf("redis holds %q, %v", kvs, err)
	}
	for _, kv := range kvs[:2] {
		if !secrets.IsSealed(kv.Value) || bytes.Contains(kv.Value, []byte(indexKey)) {
			t.Errorf("redis %s is not sealed", kv.Key)
		}
	}
	// The plaintext key was sealed in data_dir (the host can go back).
	if _, err := os.Stat(filepath.Join(dir, "recording_index_key.sealed")); err != nil {
		t.Errorf("plaintext recording key not sealed in place: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "recording_index_key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("plaintext recording key left in data_dir: %v", err)
	}
	// A replica on that Redis, with an empty data_dir of its own, prints
	// the host's user CA: targets' TrustedUserCAKeys stay valid.
	replicaDir := filepath.Join(t.TempDir(), "replica")
	replica := writeConfig(t, validYAML(replicaDir)+"secrets: {master_key_file: "+filepath.Join(dir, "master.key")+"}\n"+
		"redis: {addr: \""+srv.Addr+"\", password_file: "+srv.PasswordFile+", db: 3}\n")
	var rOut, rErr bytes.Buffer
	if code := run([]string{"ssh-config", "--config", replica, "--user-ca"}, &rOut, &rErr); code != 0 || rOut.String() != caOut.String() {
		t.Errorf("replica ssh-config --user-ca = %d %q %q, want the host's %q", code, &rOut, &rErr, &caOut)
	}
	if ttl, err := r.TTL(ctx, "session/a"); err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL(session/a) = %v, %v; want just under 1h", ttl, err)
	}

	// Run again: the namespace is in use.
	if code, _, stderr := migrate(); code != 1 || !strings.Contains(stderr, "already holds keys") {
		t.Errorf("second migrate-store = %d %q", code, stderr)
	}
	// Usage errors.
	var so, se bytes.Buffer
	if code := run([]string{"migrate-store", "--config", path}, &so, &se); code != 2 {
		t.Errorf("migrate-store without --to-redis = %d", code)
	}
	if code := run([]string{"migrate-store", "--config", path, "--to-redis", srv.Addr, "--db", "16"}, &so, &se); code != 2 {
		t.Errorf("migrate-store --db 16 = %d", code)
	}
	if code, _, stderr := migrate("--prefix", "other:", "--password-file", filepath.Join(dir, "nope")); code != 1 || !strings.Contains(stderr, "--password-file") {
		t.Errorf("migrate-store with a missing password file = %d %q", code, stderr)
	}
}
