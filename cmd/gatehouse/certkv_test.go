package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/proxy"
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
