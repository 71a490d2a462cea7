package sshgw

import (
	"bytes"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
)

// TestKeysSharedThroughStore: a single host moves to a shared store. Its
// sealed key files are imported on first use, so targets' TrustedUserCAKeys
// and users' @cert-authority lines stay valid, and a second replica with
// an empty data_dir gets the very same host key and CAs; the store holds
// them sealed.
func TestKeysSharedThroughStore(t *testing.T) {
	kr := secretstest.Shared(t)
	hostDir := t.TempDir()
	single := fileVault(t, hostDir, kr)
	cfg := &config.Config{PublicURL: "https://gate.test", Listen: config.Listen{SSH: ":2222"}}
	wantUserCA, err := UserCAPublicKey(t.Context(), single)
	if err != nil {
		t.Fatal(err)
	}
	wantKnown, err := KnownHostsLine(t.Context(), cfg, single)
	if err != nil {
		t.Fatal(err)
	}
	hostKeys, err := loadKeys(t.Context(), single)
	if err != nil {
		t.Fatal(err)
	}

	st := secretstest.NewBackend()
	replica := func(dataDir string) *secrets.Vault {
		v, err := secrets.NewVault(secrets.VaultConfig{Keyring: kr, Backend: st, Import: secrets.Dir(dataDir), PlainDir: dataDir})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, b := replica(hostDir), replica(t.TempDir())
	// Replica A (the old host) serves first: New loads through the store.
	e := newEnv(t, Limits{}, nil)
	off := *e.cfg
	off.Targets = nil
	srvA, err := New(Config{Cfg: &off, KeyVault: a, Store: e.store, Approvals: e.approvals, Keys: e.binds, Locks: e.locks, Audit: e.audit})
	if err != nil {
		t.Fatal(err)
	}
	srvB, err := New(Config{Cfg: &off, KeyVault: b, Store: e.store, Approvals: e.approvals, Keys: e.binds, Locks: e.locks, Audit: e.audit})
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*keys{"A": srvA.keys, "B": srvB.keys} {
		for i, pair := range [][2][]byte{
			{k.host.PublicKey().Marshal(), hostKeys.host.PublicKey().Marshal()},
			{k.hostCA.PublicKey().Marshal(), hostKeys.hostCA.PublicKey().Marshal()},
			{k.userCA.PublicKey().Marshal(), hostKeys.userCA.PublicKey().Marshal()},
		} {
			if !bytes.Equal(pair[0], pair[1]) {
				t.Errorf("replica %s key %s differs from the single host's", name, keyNames[i])
			}
		}
	}
	if got, err := UserCAPublicKey(t.Context(), b); err != nil || got != wantUserCA {
		t.Errorf("replica B user CA = %q, %v; want %q", got, err, wantUserCA)
	}
	if got, err := KnownHostsLine(t.Context(), cfg, b); err != nil || got != wantKnown {
		t.Errorf("replica B known_hosts line = %q, %v; want %q", got, err, wantKnown)
	}
	vals := st.Values()
	if len(vals) != len(keyNames) {
		t.Errorf("store holds %d keys, want %d", len(vals), len(keyNames))
	}
	for n, v := range vals {
		if !secrets.IsSealed(v) || bytes.Contains(v, []byte("PRIVATE KEY")) || bytes.Contains(v, []byte("openssh-key-v1")) {
			t.Errorf("store value %s is not sealed", n)
		}
	}
}

// TestKeysConcurrentReplicasAgree: two replicas starting at once on an
// empty store end up with one set of keys.
func TestKeysConcurrentReplicasAgree(t *testing.T) {
	kr := secretstest.Shared(t)
	st := secretstest.NewBackend()
	lines := make([]string, 6)
	done := make(chan struct{})
	for i := range lines {
		go func() {
			defer func() { done <- struct{}{} }()
			dir := t.TempDir()
			v, err := secrets.NewVault(secrets.VaultConfig{Keyring: kr, Backend: st, Import: secrets.Dir(dir), PlainDir: dir})
			if err == nil {
				lines[i], err = UserCAPublicKey(t.Context(), v)
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	for range lines {
		<-done
	}
	for _, l := range lines {
		if l == "" || l != lines[0] {
			t.Fatalf("replicas got different user CAs: %q", lines)
		}
	}
}
