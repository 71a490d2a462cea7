package recording

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
)

// Key files in KeyDir, each created on first use (mode 0600) and never
// replaced: replacing one would make every earlier recording unreadable
// (age identity), unsearchable (index key) or unverifiable (seal key).
const (
	ageKeyFile   = "recording_age_identity" // AGE-SECRET-KEY-1... (the deployment's recording key)
	indexKeyFile = "recording_index_key"    // 32 random bytes, hex: HMAC key for search tokens
	sealKeyFile  = "recording_seal_ed25519" // 32-byte Ed25519 seed, hex
)

// keys holds the recorder's secrets.
type keys struct {
	identity   *age.X25519Identity
	recipients []age.Recipient // the deployment's key first, then Config.Recipients
	index      []byte
	seal       ed25519.PrivateKey
}

// loadKeys reads (or creates) the three keys in dir and parses the extra
// recipients.
func loadKeys(dir string, extra []string) (*keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("recording keys: %w", err)
	}
	idText, err := loadOrCreate(dir, ageKeyFile, func() (string, error) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return "", err
		}
		return id.String(), nil
	})
	if err != nil {
		return nil, err
	}
	id, err := age.ParseX25519Identity(idText)
	if err != nil {
		return nil, fmt.Errorf("recording key %s: %w", ageKeyFile, err)
	}
	k := &keys{identity: id, recipients: []age.Recipient{id.Recipient()}}
	for i, s := range extra {
		rc, err := age.ParseX25519Recipient(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("recording.recipients[%d]: %w", i, err)
		}
		k.recipients = append(k.recipients, rc)
	}
	if k.index, err = loadSecret(dir, indexKeyFile); err != nil {
		return nil, err
	}
	seed, err := loadSecret(dir, sealKeyFile)
	if err != nil {
		return nil, err
	}
	k.seal = ed25519.NewKeyFromSeed(seed)
	return k, nil
}

// sealPublic is the public half of the sealing key.
func (k *keys) sealPublic() ed25519.PublicKey { return k.seal.Public().(ed25519.PublicKey) }

// token is the search token of one lowercased word: HMAC-SHA256 under the
// index key, so the store holds no plaintext words and a stolen store
// cannot be searched without the key.
func (k *keys) token(word string) string {
	m := hmac.New(sha256.New, k.index)
	m.Write([]byte(word))
	return hex.EncodeToString(m.Sum(nil))
}

// loadSecret reads (or creates) a 32-byte hex secret.
func loadSecret(dir, name string) ([]byte, error) {
	text, err := loadOrCreate(dir, name, func() (string, error) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		return hex.EncodeToString(b), nil
	})
	if err != nil {
		return nil, err
	}
	b, err := hex.DecodeString(text)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("recording key %s: not 32 hex-encoded bytes", name)
	}
	return b, nil
}

// loadOrCreate returns the trimmed content of dir/name, creating it with
// gen if absent. Creation writes a temporary file and hard-links it into
// place, so concurrent creators (serve and a CLI command) end up with the
// same key; the loser's key is discarded before anything used it.
func loadOrCreate(dir, name string, gen func() (string, error)) (string, error) {
	path := filepath.Join(dir, name)
	if s, err := readSecret(path); !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	text, err := gen()
	if err != nil {
		return "", fmt.Errorf("generate %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return "", fmt.Errorf("create %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(text + "\n")
	if werr == nil {
		werr = tmp.Chmod(0o600)
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return "", fmt.Errorf("write %s: %w", name, werr)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("install %s: %w", name, err)
	}
	return readSecret(path)
}

// readSecret reads a key file and insists that group and others cannot
// read it.
func readSecret(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("key %s: mode %v is too open (want 0600)", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
