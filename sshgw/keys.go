package sshgw

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/secrets"
)

// Key files under data_dir/ssh. Each is an OpenSSH private key sealed
// under the master key (package secrets) in name+sealedExt, mode 0600,
// created on first use and never replaced except by rekey. Older releases
// kept the plaintext key in name; it is sealed and removed on first use.
const (
	keyDir       = "ssh"
	hostKeyFile  = "host_ed25519_key" // the gateway's own host key
	hostCAFile   = "host_ca_ed25519"  // signs host certificates (gateway, ProxyJump targets)
	userCAFile   = "user_ca_ed25519"  // signs the per-connection certificates for targets
	caKeyComment = "gatehouse"
	sealedExt    = ".sealed"
)

// keyNames are every key file this package keeps.
var keyNames = [...]string{hostKeyFile, hostCAFile, userCAFile}

// keys holds the gateway's signing keys.
type keys struct {
	host   gossh.Signer // the gateway's host key
	hostCA gossh.Signer
	userCA gossh.Signer
}

// keyFiles locates the key files and opens them with the master keyring.
type keyFiles struct {
	dir string
	kr  *secrets.Keyring
	log *slog.Logger
}

func newKeyFiles(dataDir string, kr *secrets.Keyring, log *slog.Logger) (keyFiles, error) {
	if dataDir == "" {
		return keyFiles{}, errors.New("data_dir is not set")
	}
	if kr == nil {
		return keyFiles{}, errors.New("no master keyring: the SSH keys are kept sealed")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return keyFiles{dir: filepath.Join(dataDir, keyDir), kr: kr, log: log}, nil
}

// purpose binds a sealed key to its file name, so that the sealed user CA
// cannot be swapped in for the host CA.
func purpose(name string) string { return "sshgw/" + name }

// loadKeys opens, or creates on first use, the three keys in dataDir.
func loadKeys(dataDir string, kr *secrets.Keyring, log *slog.Logger) (*keys, error) {
	kf, err := newKeyFiles(dataDir, kr, log)
	if err != nil {
		return nil, err
	}
	var s [len(keyNames)]gossh.Signer
	for i, name := range keyNames {
		if s[i], err = kf.loadOrCreate(name); err != nil {
			return nil, err
		}
	}
	return &keys{host: s[0], hostCA: s[1], userCA: s[2]}, nil
}

// UserCAPublicKey returns the user CA's public key as one authorized_keys
// line, for a target's TrustedUserCAKeys. It creates the CA in dataDir if
// it does not exist yet, so it works before `serve` has ever run.
func UserCAPublicKey(dataDir string, kr *secrets.Keyring, log *slog.Logger) (string, error) {
	s, err := loadOrCreateKey(dataDir, userCAFile, kr, log)
	if err != nil {
		return "", err
	}
	return authorizedKey(s.PublicKey(), "gatehouse-user-ca"), nil
}

// ResealKeys rewrites every key file of dataDir sealed with the keyring's
// current master key (sealing plaintext ones from older releases) and
// returns how many it rewrote. `gatehouse rekey` runs it so that a previous
// master key can be dropped.
func ResealKeys(dataDir string, kr *secrets.Keyring, log *slog.Logger) (int, error) {
	kf, err := newKeyFiles(dataDir, kr, log)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range keyNames {
		path := filepath.Join(kf.dir, name+sealedExt)
		b, err := readPrivate(path)
		if errors.Is(err, fs.ErrNotExist) {
			// Absent or still plaintext: loading migrates the latter.
			if _, err := os.Stat(filepath.Join(kf.dir, name)); err == nil {
				if _, err := kf.loadOrCreate(name); err != nil {
					return n, err
				}
				n++
			}
			continue
		}
		if err != nil {
			return n, err
		}
		out, changed, err := kr.Reseal(purpose(name), b)
		if err != nil {
			return n, fmt.Errorf("key %s: %w", path, err)
		}
		if !changed {
			continue
		}
		if err := kf.install(name, out, true); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// authorizedKey renders k as an authorized_keys line with a comment.
func authorizedKey(k gossh.PublicKey, comment string) string {
	line := string(gossh.MarshalAuthorizedKey(k))
	return line[:len(line)-1] + " " + comment
}

// loadOrCreateKey reads the sealed Ed25519 key name in dataDir/ssh,
// sealing a plaintext one from an older release or creating a new one
// (and the directories, 0700) if absent.
func loadOrCreateKey(dataDir, name string, kr *secrets.Keyring, log *slog.Logger) (gossh.Signer, error) {
	kf, err := newKeyFiles(dataDir, kr, log)
	if err != nil {
		return nil, err
	}
	return kf.loadOrCreate(name)
}

func (kf keyFiles) loadOrCreate(name string) (gossh.Signer, error) {
	sealedPath := filepath.Join(kf.dir, name+sealedExt)
	if s, err := kf.read(name); !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	plainPath := filepath.Join(kf.dir, name)
	pemBytes, err := readPrivate(plainPath)
	migrate := err == nil
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if pemBytes, err = newKeyPEM(name); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	if _, err := parseKey(plainPath, pemBytes); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(kf.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key directory: %w", err)
	}
	sealed, err := kf.kr.Seal(purpose(name), pemBytes)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", name, err)
	}
	if err := kf.install(name, sealed, false); err != nil {
		return nil, err
	}
	if migrate {
		// Only once the sealed copy is in place; a concurrent migrator may
		// have removed it first.
		if err := os.Remove(plainPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove plaintext key %s: %w", plainPath, err)
		}
		kf.log.Warn("Sealed a plaintext SSH key under the master key and removed the plaintext file.", "file", plainPath, "sealed", sealedPath)
	}
	return kf.read(name)
}

// newKeyPEM generates an Ed25519 key as an OpenSSH PEM block.
func newKeyPEM(name string) ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", name, err)
	}
	block, err := gossh.MarshalPrivateKey(priv, caKeyComment)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", name, err)
	}
	return pem.EncodeToMemory(block), nil
}

// install writes data as name's sealed file atomically: to a temporary
// file first, then hard-linked into place when creating (so concurrent
// creators, serve and ssh-config, end up with the same key: the first one
// wins) or renamed over the old file when resealing.
func (kf keyFiles) install(name string, data []byte, replace bool) error {
	path := filepath.Join(kf.dir, name+sealedExt)
	tmp, err := os.CreateTemp(kf.dir, "."+name+".tmp*")
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	for _, err := range []error{werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()} {
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	if replace {
		if err := os.Rename(tmp.Name(), path); err != nil {
			return fmt.Errorf("install %s: %w", name, err)
		}
		return nil
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("install %s: %w", name, err)
	}
	return nil
}

// read opens and parses name's sealed key file.
func (kf keyFiles) read(name string) (gossh.Signer, error) {
	path := filepath.Join(kf.dir, name+sealedExt)
	b, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	pemBytes, err := kf.kr.Open(purpose(name), b)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return parseKey(path, pemBytes)
}

// readPrivate reads path, insisting that group and others cannot read it.
func readPrivate(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key %s: mode %v is too open (want 0600)", path, fi.Mode().Perm())
	}
	return os.ReadFile(path)
}

// parseKey parses an OpenSSH private key and insists that it is Ed25519.
func parseKey(path string, data []byte) (gossh.Signer, error) {
	s, err := gossh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	if t := s.PublicKey().Type(); t != gossh.KeyAlgoED25519 {
		return nil, fmt.Errorf("key %s: type %s, want %s", path, t, gossh.KeyAlgoED25519)
	}
	return s, nil
}
