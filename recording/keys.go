package recording

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/gatehouse-dev/gatehouse/secrets"
)

// The recorder's keys, kept sealed under the master key in a
// secrets.Vault (sealed files in data_dir on a single host, the store when
// replicas share Redis, so every replica reads what the others wrote).
// Each is created on first use and never replaced: replacing one would make
// every earlier recording unreadable (age identity), unsearchable (index
// key) or unverifiable (seal key). Older releases kept them in the clear in
// data_dir under the same names; they are sealed and removed on first use.
const (
	ageKeyFile   = "recording_age_identity" // AGE-SECRET-KEY-1... (the deployment's recording key)
	indexKeyFile = "recording_index_key"    // 32 random bytes, hex: HMAC key for search tokens
	sealKeyFile  = "recording_seal_ed25519" // 32-byte Ed25519 seed, hex
)

// keyLoadTimeout bounds loading the keys in New from a shared store.
const keyLoadTimeout = 30 * time.Second

// keys holds the recorder's secrets.
type keys struct {
	identity   *age.X25519Identity
	recipients []age.Recipient // the deployment's key first, then Config.Recipients
	index      []byte
	seal       ed25519.PrivateKey
}

// KeySpecs are the recorder's keys, for rekey and migrate-store.
func KeySpecs() []secrets.Spec {
	return []secrets.Spec{
		spec(ageKeyFile, newAgeIdentity, func(b []byte) error { _, err := parseIdentity(b); return err }),
		spec(indexKeyFile, newSecret, func(b []byte) error { _, err := parseSecret(b); return err }),
		spec(sealKeyFile, newSecret, func(b []byte) error { _, err := parseSecret(b); return err }),
	}
}

// spec describes one key to the vault; its purpose binds it to its name.
func spec(name string, gen func() ([]byte, error), check func([]byte) error) secrets.Spec {
	return secrets.Spec{Name: name, Purpose: "recording/" + name, New: gen, Check: check}
}

// loadKeys opens (or creates) the three keys in v and parses the extra
// recipients.
func loadKeys(v *secrets.Vault, extra []string) (*keys, error) {
	if v == nil {
		return nil, errors.New("recording: Keys is required (the recording keys are kept sealed)")
	}
	// New has no context of its own; the store answers or fails in this.
	ctx, cancel := context.WithTimeout(context.Background(), keyLoadTimeout)
	defer cancel()
	var raw [3][]byte
	for i, s := range KeySpecs() {
		var err error
		if raw[i], err = v.LoadOrCreate(ctx, s); err != nil {
			return nil, fmt.Errorf("recording keys: %w", err)
		}
	}
	id, err := parseIdentity(raw[0])
	if err != nil {
		return nil, err
	}
	k := &keys{identity: id, recipients: []age.Recipient{id.Recipient()}}
	for i, s := range extra {
		rc, err := age.ParseX25519Recipient(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("recording.recipients[%d]: %w", i, err)
		}
		k.recipients = append(k.recipients, rc)
	}
	if k.index, err = parseSecret(raw[1]); err != nil {
		return nil, err
	}
	seed, err := parseSecret(raw[2])
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

func newAgeIdentity() ([]byte, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	return []byte(id.String()), nil
}

// parseIdentity parses the age identity (files of older releases end in a
// newline).
func parseIdentity(b []byte) (*age.X25519Identity, error) {
	id, err := age.ParseX25519Identity(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("recording key %s: %w", ageKeyFile, err)
	}
	return id, nil
}

func newSecret() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return []byte(hex.EncodeToString(b)), nil
}

// parseSecret decodes a 32-byte hex secret.
func parseSecret(text []byte) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(string(text)))
	if err != nil || len(b) != 32 {
		return nil, errors.New("recording key: not 32 hex-encoded bytes")
	}
	return b, nil
}
