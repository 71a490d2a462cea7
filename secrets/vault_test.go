package secrets_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
)

func randomKey() ([]byte, error) {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	return b, err
}

func spec(name string) secrets.Spec {
	return secrets.Spec{Name: name, Purpose: "test/" + name, New: randomKey}
}

func vault(t *testing.T, c secrets.VaultConfig) *secrets.Vault {
	t.Helper()
	v, err := secrets.NewVault(c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVaultConcurrentFirstUse: two replicas (separate vaults over one
// backend) and two goroutines each, all creating the same key at once,
// end up with one key, for the store-like and the directory backend.
func TestVaultConcurrentFirstUse(t *testing.T) {
	kr := secretstest.New(t)
	for name, b := range map[string]secrets.Backend{
		"store": secretstest.NewBackend(),
		"dir":   secrets.Dir(filepath.Join(t.TempDir(), "data")),
	} {
		t.Run(name, func(t *testing.T) {
			replicas := []*secrets.Vault{vault(t, secrets.VaultConfig{Keyring: kr, Backend: b}), vault(t, secrets.VaultConfig{Keyring: kr, Backend: b})}
			const per = 4
			got := make([][]byte, 2*per)
			var wg sync.WaitGroup
			for i := range got {
				wg.Go(func() {
					k, err := replicas[i%2].LoadOrCreate(t.Context(), spec("ssh/ca"))
					if err != nil {
						t.Error(err)
					}
					got[i] = k
				})
			}
			wg.Wait()
			for i, k := range got {
				if len(k) != 32 || !bytes.Equal(k, got[0]) {
					t.Fatalf("creator %d got %x, creator 0 %x: want one key", i, k, got[0])
				}
			}
			raw, err := b.Get(t.Context(), "ssh/ca")
			if err != nil || !secrets.IsSealed(raw) || bytes.Contains(raw, got[0]) {
				t.Errorf("stored value %x (%v) is not sealed", raw, err)
			}
		})
	}
}

// TestVaultPurposeSwapRefused: a sealed key copied over another's name
// does not open.
func TestVaultPurposeSwapRefused(t *testing.T) {
	kr := secretstest.New(t)
	b := secretstest.NewBackend()
	v := vault(t, secrets.VaultConfig{Keyring: kr, Backend: b})
	for _, n := range []string{"user_ca", "host_ca"} {
		if _, err := v.LoadOrCreate(t.Context(), spec(n)); err != nil {
			t.Fatal(err)
		}
	}
	uca, _ := b.Get(t.Context(), "user_ca")
	b.Set(t.Context(), "host_ca", uca)
	if k, err := v.LoadOrCreate(t.Context(), spec("host_ca")); !errors.Is(err, secrets.ErrOpen) {
		t.Errorf("swapped key = %x, %v; want ErrOpen", k, err)
	}
}

// TestVaultResealAndImport: rekey reseals with the new master key (the
// old one can then go), and a store without keys imports the sealed files
// and seals the plaintext ones a single host left, removing the latter.
func TestVaultResealAndImport(t *testing.T) {
	oldRaw, newRaw := must(randomKey()), must(randomKey())
	oldKR, newKR, both := keyring(t, oldRaw), keyring(t, newRaw), keyring(t, newRaw, oldRaw)
	dir := t.TempDir()
	files := vault(t, secrets.VaultConfig{Keyring: oldKR, Backend: secrets.Dir(dir), PlainDir: dir})
	sealedKey, err := files.LoadOrCreate(t.Context(), spec("ssh/ca"))
	if err != nil {
		t.Fatal(err)
	}
	plainKey := []byte("an old plaintext key")
	if err := os.WriteFile(filepath.Join(dir, "rec_key"), plainKey, 0o600); err != nil {
		t.Fatal(err)
	}

	// The store replica has a new master key and keeps the old one to open
	// the files it imports.
	st := secretstest.NewBackend()
	shared := vault(t, secrets.VaultConfig{Keyring: both, Backend: st, Import: secrets.Dir(dir), PlainDir: dir})
	if got, err := shared.LoadOrCreate(t.Context(), spec("ssh/ca")); err != nil || !bytes.Equal(got, sealedKey) {
		t.Errorf("imported ssh/ca = %x, %v; want the file's %x", got, err, sealedKey)
	}
	if got, err := shared.LoadOrCreate(t.Context(), spec("rec_key")); err != nil || !bytes.Equal(got, plainKey) {
		t.Errorf("migrated rec_key = %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "rec_key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("plaintext file left after migration: %v", err)
	}
	for n, b := range st.Values() {
		if !both.Current(b) {
			t.Errorf("store value %s not sealed with the current key", n)
		}
	}
	// Rekey of the files (a single host rotating): one rewritten, then none.
	filesBoth := vault(t, secrets.VaultConfig{Keyring: both, Backend: secrets.Dir(dir), PlainDir: dir})
	specs := []secrets.Spec{spec("ssh/ca"), spec("rec_key"), spec("never_made")}
	if n, err := filesBoth.Reseal(t.Context(), specs...); err != nil || n != 1 {
		t.Errorf("Reseal = %d, %v; want 1", n, err)
	}
	if n, err := filesBoth.Reseal(t.Context(), specs...); err != nil || n != 0 {
		t.Errorf("second Reseal = %d, %v; want 0", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "never_made.sealed")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Reseal created a key: %v", err)
	}
	newOnly := vault(t, secrets.VaultConfig{Keyring: newKR, Backend: secrets.Dir(dir)})
	if got, err := newOnly.LoadOrCreate(t.Context(), spec("ssh/ca")); err != nil || !bytes.Equal(got, sealedKey) {
		t.Errorf("after rekey, the new key alone opens %x, %v", got, err)
	}
	oldOnly := vault(t, secrets.VaultConfig{Keyring: oldKR, Backend: secrets.Dir(dir)})
	if _, err := oldOnly.LoadOrCreate(t.Context(), spec("ssh/ca")); !errors.Is(err, secrets.ErrUnknownKey) {
		t.Errorf("old key after rekey: %v, want ErrUnknownKey", err)
	}
}

// TestVaultRefuses: no import or plaintext and no generator is "absent";
// a world-readable key file and an escaping name are refused.
func TestVaultRefuses(t *testing.T) {
	dir := t.TempDir()
	v := vault(t, secrets.VaultConfig{Keyring: secretstest.New(t), Backend: secrets.Dir(dir), PlainDir: dir})
	if _, err := v.LoadOrCreate(t.Context(), secrets.Spec{Name: "k", Purpose: "p"}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no New: %v, want fs.ErrNotExist", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "open"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := v.LoadOrCreate(t.Context(), spec("open")); err == nil {
		t.Error("a world-readable plaintext key was accepted")
	}
	if _, err := v.LoadOrCreate(t.Context(), spec("../escape")); err == nil {
		t.Error("a name outside the directory was accepted")
	}
	if _, err := secrets.NewVault(secrets.VaultConfig{Backend: secrets.Dir(dir)}); err == nil {
		t.Error("a vault without a keyring was accepted")
	}
}

func keyring(t *testing.T, raw ...[]byte) *secrets.Keyring {
	t.Helper()
	kr, err := secrets.New(raw...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
