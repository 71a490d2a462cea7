package recording

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
)

// testVault is a single host's key vault in dir. The master key is the
// fixed test key, so a crash-test child process opens the same keys.
func testVault(t testing.TB, dir string) *secrets.Vault {
	t.Helper()
	v, err := secrets.NewVault(secrets.VaultConfig{Keyring: secretstest.Shared(t), Backend: secrets.Dir(dir), PlainDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestKeysSealedAndPlaintextMigrated: keys that an older release left in
// the clear in data_dir are sealed (the same keys) and the plaintext files
// removed; keys created new are sealed; no file holds a key in the clear.
func TestKeysSealedAndPlaintextMigrated(t *testing.T) {
	dir := t.TempDir()
	id, _ := age.GenerateX25519Identity()
	seed := bytes.Repeat([]byte{0x5e}, 32)
	for name, text := range map[string]string{ageKeyFile: id.String() + "\n", sealKeyFile: hex.EncodeToString(seed) + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	k, err := loadKeys(testVault(t, dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	if k.identity.String() != id.String() || !bytes.Equal(k.seal, ed25519.NewKeyFromSeed(seed)) {
		t.Error("migration replaced the keys instead of sealing them")
	}
	secretsText := []string{id.String(), hex.EncodeToString(seed), hex.EncodeToString(k.index), "AGE-SECRET-KEY-"}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 {
		t.Errorf("data_dir holds %d files, want the 3 sealed keys", len(ents))
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".sealed") {
			t.Errorf("%s left in data_dir", e.Name())
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		for _, s := range secretsText {
			if bytes.Contains(b, []byte(s)) || bytes.Contains(b, []byte(strings.ToUpper(s))) {
				t.Errorf("%s holds a key in the clear", e.Name())
			}
		}
	}
	again, err := loadKeys(testVault(t, dir), nil)
	if err != nil || !bytes.Equal(again.index, k.index) || !bytes.Equal(again.seal, k.seal) {
		t.Errorf("second load gave other keys (%v)", err)
	}
	if _, err := loadKeys(nil, nil); err == nil {
		t.Error("loaded keys without a vault")
	}
}

// TestKeysSharedThroughStore: two replicas with their own data_dir over one
// store read and write recordings with the same keys, held sealed.
func TestKeysSharedThroughStore(t *testing.T) {
	st := secretstest.NewBackend()
	var got []*keys
	for range 2 {
		dir := t.TempDir()
		v, err := secrets.NewVault(secrets.VaultConfig{Keyring: secretstest.Shared(t), Backend: st, Import: secrets.Dir(dir), PlainDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		k, err := loadKeys(v, nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("a store replica wrote %d key files to data_dir", len(ents))
		}
	}
	if got[0].identity.String() != got[1].identity.String() || !bytes.Equal(got[0].index, got[1].index) || !bytes.Equal(got[0].seal, got[1].seal) {
		t.Error("replicas got different recording keys")
	}
	for n, v := range st.Values() {
		if !secrets.IsSealed(v) || bytes.Contains(v, []byte("AGE-SECRET-KEY-")) || bytes.Contains(v, []byte(hex.EncodeToString(got[0].index))) {
			t.Errorf("store value %s is not sealed", n)
		}
	}
	// Keys sealed for another name do not open (purpose binding).
	idx, _ := st.Get(t.Context(), indexKeyFile)
	st.Set(t.Context(), sealKeyFile, idx)
	v, _ := secrets.NewVault(secrets.VaultConfig{Keyring: secretstest.Shared(t), Backend: st})
	if _, err := loadKeys(v, nil); !errors.Is(err, secrets.ErrOpen) {
		t.Errorf("swapped key: %v, want ErrOpen", err)
	}
}
