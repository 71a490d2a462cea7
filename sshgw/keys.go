package sshgw

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	gossh "golang.org/x/crypto/ssh"
)

// Key files under data_dir/ssh. Each is an OpenSSH private key, mode 0600,
// created on first use and never replaced.
const (
	keyDir       = "ssh"
	hostKeyFile  = "host_ed25519_key" // the gateway's own host key
	hostCAFile   = "host_ca_ed25519"  // signs host certificates (gateway, ProxyJump targets)
	userCAFile   = "user_ca_ed25519"  // signs the per-connection certificates for targets
	caKeyComment = "gatehouse"
)

// keys holds the gateway's signing keys.
type keys struct {
	host   gossh.Signer // the gateway's host key
	hostCA gossh.Signer
	userCA gossh.Signer
}

// loadKeys opens, or creates on first use, the three keys in dataDir.
func loadKeys(dataDir string) (*keys, error) {
	host, err := loadOrCreateKey(dataDir, hostKeyFile)
	if err != nil {
		return nil, err
	}
	hostCA, err := loadOrCreateKey(dataDir, hostCAFile)
	if err != nil {
		return nil, err
	}
	userCA, err := loadOrCreateKey(dataDir, userCAFile)
	if err != nil {
		return nil, err
	}
	return &keys{host: host, hostCA: hostCA, userCA: userCA}, nil
}

// UserCAPublicKey returns the user CA's public key as one authorized_keys
// line, for a target's TrustedUserCAKeys. It creates the CA in dataDir if
// it does not exist yet, so it works before `serve` has ever run.
func UserCAPublicKey(dataDir string) (string, error) {
	s, err := loadOrCreateKey(dataDir, userCAFile)
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

// loadOrCreateKey reads the Ed25519 key name in dataDir/ssh, creating it
// (and the directories, 0700) if absent. Creation is atomic: the key is
// written to a temporary file and hard-linked into place, so concurrent
// creators (serve and ssh-config) end up with the same key.
func loadOrCreateKey(dataDir, name string) (gossh.Signer, error) {
	if dataDir == "" {
		return nil, errors.New("data_dir is not set")
	}
	dir := filepath.Join(dataDir, keyDir)
	path := filepath.Join(dir, name)
	if s, err := readKey(path); !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key directory: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", name, err)
	}
	block, err := gossh.MarshalPrivateKey(priv, caKeyComment)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := tmp.Write(pem.EncodeToMemory(block)); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	// Link fails if another process created the key meanwhile; theirs wins.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("install %s: %w", name, err)
	}
	return readKey(path)
}

// readKey parses the private key at path and insists that it is Ed25519
// and not readable by group or others.
func readKey(path string) (gossh.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key %s: mode %v is too open (want 0600)", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := gossh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	if t := s.PublicKey().Type(); t != gossh.KeyAlgoED25519 {
		return nil, fmt.Errorf("key %s: type %s, want %s", path, t, gossh.KeyAlgoED25519)
	}
	return s, nil
}
