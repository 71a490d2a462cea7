package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
	"github.com/gatehouse-dev/gatehouse/store"
)

// TestCertKVSealsFiles checks that certmagic's files reach the store only
// sealed, come back whole, cannot be moved to another key, and that a
// missing one is fs.ErrNotExist (what certmagic tests for).
func TestCertKVSealsFiles(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kv := certKV{st: st, kr: secretstest.New(t)}
	key := proxy.CertDataPrefix + "certificates/acme/x.example/x.example.key"
	secret := []byte("-----BEGIN EC PRIVATE KEY-----\nsecret\n-----END EC PRIVATE KEY-----\n")
	if err := kv.Set(ctx, key, secret, 0); err != nil {
		t.Fatal(err)
	}
	raw, err := st.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("PRIVATE KEY")) || bytes.Contains(raw, []byte("secret")) {
		t.Fatalf("store holds the file in the clear: %q", raw)
	}
	got, err := kv.Get(ctx, key)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Get = %q, %v; want the file", got, err)
	}
	other := proxy.CertDataPrefix + "acme/account.key"
	if err := st.Set(ctx, other, raw, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, other); err == nil {
		t.Error("a sealed file moved to another key opened")
	}
	if _, err := kv.Get(ctx, proxy.CertDataPrefix+"missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(missing) = %v, want fs.ErrNotExist", err)
	}
	// Locks are not secret and pass through as the store has them.
	if ok, err := kv.SetNX(ctx, "certmagic-lock/x", []byte("tok"), 0); !ok || err != nil {
		t.Fatalf("SetNX(lock) = %v, %v", ok, err)
	}
	if v, err := st.Get(ctx, "certmagic-lock/x"); err != nil || string(v) != "tok" {
		t.Errorf("lock in store = %q, %v", v, err)
	}
	keys, err := kv.Keys(ctx, proxy.CertDataPrefix)
	if err != nil || len(keys) != 2 {
		t.Errorf("Keys = %q, %v; want the two files", keys, err)
	}
}

// TestRekeyResealsCertificates checks that rekey seals certmagic's files
// again with the new master key, so that dropping the old key after a
// rotation (README, secrets) keeps every certificate and ACME account.
func TestRekeyResealsCertificates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	oldKey, newKey := filepath.Join(dir, "old.key"), filepath.Join(dir, "new.key")
	for _, f := range []string{oldKey, newKey} {
		if _, err := secrets.CreateKeyFile(f); err != nil {
			t.Fatal(err)
		}
	}
	oldRing, err := secrets.Open(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	rotating, err := secrets.Open(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	newRing, err := secrets.Open(newKey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key := proxy.CertDataPrefix + "certificates/acme/x.example/x.example.key"
	if err := (certKV{st: st, kr: oldRing}).Set(ctx, key, []byte("the key"), 0); err != nil {
		t.Fatal(err)
	}
	n, err := resealCerts(ctx, st, rotating)
	if err != nil || n != 1 {
		t.Fatalf("resealCerts = %d, %v; want 1 file", n, err)
	}
	if got, err := (certKV{st: st, kr: newRing}).Get(ctx, key); err != nil || string(got) != "the key" {
		t.Errorf("after rekey, the new key alone opens %q, %v", got, err)
	}
	if n, err := resealCerts(ctx, st, rotating); err != nil || n != 0 {
		t.Errorf("second resealCerts = %d, %v; want nothing left to do", n, err)
	}
}
