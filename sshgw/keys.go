package sshgw

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/secrets"
)

// The gateway's keys, kept sealed under the master key in a secrets.Vault:
// in data_dir/ssh/NAME.sealed on a single host, in the store when replicas
// share Redis (so every replica presents the same host key and signs with
// the same CAs). Each is an OpenSSH Ed25519 private key, created on first
// use and never replaced except by rekey. Older releases kept the
// plaintext key in data_dir/ssh/NAME; it is sealed and removed on first use.
const (
	keyDir       = "ssh"
	hostKeyFile  = "host_ed25519_key" // the gateway's own host key
	hostCAFile   = "host_ca_ed25519"  // signs host certificates (gateway, ProxyJump targets)
	userCAFile   = "user_ca_ed25519"  // signs the per-connection certificates for targets
	caKeyComment = "gatehouse"
)

// keyNames are every key this package keeps.
var keyNames = [...]string{hostKeyFile, hostCAFile, userCAFile}

// keys holds the gateway's signing keys.
type keys struct {
	host   gossh.Signer // the gateway's host key
	hostCA gossh.Signer
	userCA gossh.Signer
}

// purpose binds a sealed key to its name, so that the sealed user CA
// cannot be swapped in for the host CA. It is what older releases used
// for their sealed files, so those still open.
func purpose(name string) string { return "sshgw/" + name }

// keySpec describes the key name to the vault.
func keySpec(name string) secrets.Spec {
	return secrets.Spec{
		Name:    keyDir + "/" + name,
		Purpose: purpose(name),
		New:     newKeyPEM,
		Check: func(b []byte) error {
			_, err := parseKey(b)
			return err
		},
	}
}

// KeySpecs are the keys of the bastion, for rekey and migrate-store.
func KeySpecs() []secrets.Spec {
	out := make([]secrets.Spec, 0, len(keyNames))
	for _, n := range keyNames {
		out = append(out, keySpec(n))
	}
	return out
}

// FileVault is the vault of a single host: sealed files under dataDir,
// plaintext files from older releases migrated. Tests and callers without
// a shared store use it.
func FileVault(dataDir string, kr *secrets.Keyring) (*secrets.Vault, error) {
	if dataDir == "" {
		return nil, errors.New("data_dir is not set")
	}
	return secrets.NewVault(secrets.VaultConfig{Keyring: kr, Backend: secrets.Dir(dataDir), PlainDir: dataDir})
}

// loadKeys opens, or creates on first use, the three keys in v.
func loadKeys(ctx context.Context, v *secrets.Vault) (*keys, error) {
	var s [len(keyNames)]gossh.Signer
	for i, name := range keyNames {
		var err error
		if s[i], err = loadKey(ctx, v, name); err != nil {
			return nil, err
		}
	}
	return &keys{host: s[0], hostCA: s[1], userCA: s[2]}, nil
}

// UserCAPublicKey returns the user CA's public key as one authorized_keys
// line, for a target's TrustedUserCAKeys. It creates the CA if it does not
// exist yet, so it works before `serve` has ever run.
func UserCAPublicKey(ctx context.Context, v *secrets.Vault) (string, error) {
	s, err := loadKey(ctx, v, userCAFile)
	if err != nil {
		return "", err
	}
	return authorizedKey(s.PublicKey(), "gatehouse-user-ca"), nil
}

// authorizedKey renders k as an authorized_keys line with a comment.
func authorizedKey(k gossh.PublicKey, comment string) string {
	line := string(gossh.MarshalAuthorizedKey(k))
	return line[:len(line)-1] + " " + comment
}

// loadKey opens (creating on first use) the key name from v.
func loadKey(ctx context.Context, v *secrets.Vault, name string) (gossh.Signer, error) {
	if v == nil {
		return nil, errors.New("no key vault: the SSH keys are kept sealed")
	}
	b, err := v.LoadOrCreate(ctx, keySpec(name))
	if err != nil {
		return nil, err
	}
	return parseKey(b)
}

// newKeyPEM generates an Ed25519 key as an OpenSSH PEM block.
func newKeyPEM() ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := gossh.MarshalPrivateKey(priv, caKeyComment)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(block), nil
}

// parseKey parses an OpenSSH private key and insists that it is Ed25519.
func parseKey(data []byte) (gossh.Signer, error) {
	s, err := gossh.ParsePrivateKey(data)
	if err != nil {
		return nil, err
	}
	if t := s.PublicKey().Type(); t != gossh.KeyAlgoED25519 {
		return nil, fmt.Errorf("type %s, want %s", t, gossh.KeyAlgoED25519)
	}
	return s, nil
}

// newKeys loads the keys for New from c.KeyVault, or from sealed files in
// the data directory when there is none.
func newKeys(c Config) (*keys, error) {
	v := c.KeyVault
	if v == nil {
		dataDir := c.DataDir
		if dataDir == "" {
			dataDir = c.Cfg.DataDir
		}
		var err error
		if v, err = FileVault(dataDir, c.Secrets); err != nil {
			return nil, err
		}
	}
	// New has no context of its own; the store answers or fails in this.
	ctx, cancel := context.WithTimeout(context.Background(), keyLoadTimeout)
	defer cancel()
	return loadKeys(ctx, v)
}

// keyLoadTimeout bounds loading the keys at start-up from a shared store.
const keyLoadTimeout = 30 * time.Second
