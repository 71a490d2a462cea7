package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxKeyFile bounds a key file read: a real one is 44 or 45 bytes.
const maxKeyFile = 1024

// Open reads the current master key from keyFile and any previous keys
// (kept during a rotation so that values they sealed still open) and
// returns the keyring. Each file holds the standard base64 encoding of
// KeySize random bytes (`openssl rand -base64 32`), surrounding whitespace
// allowed, and must not be readable by group or others.
func Open(keyFile string, previous ...string) (*Keyring, error) {
	files := append([]string{keyFile}, previous...)
	keys := make([][]byte, 0, len(files))
	for _, f := range files {
		k, err := ReadKeyFile(f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return New(keys...)
}

// ReadKeyFile reads and decodes one master key file, refusing a file that
// is not regular, that group or others may read, or that does not hold
// exactly KeySize bytes in base64.
func ReadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("master key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("master key %s: mode %04o is too open (chmod 600 %s)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("master key %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("master key %s: larger than %d bytes", path, maxKeyFile)
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(raw) != KeySize {
		return nil, fmt.Errorf("master key %s: want the base64 of %d random bytes (openssl rand -base64 %d)", path, KeySize, KeySize)
	}
	return raw, nil
}

// CreateKeyFile writes a new random master key to path (mode 0600, its
// directory created 0700) unless the file exists, and reports whether it
// made one. Creation is atomic: the key is written to a temporary file and
// hard-linked into place, so concurrent creators (serve and ssh-config)
// end up with the same key.
func CreateKeyFile(path string) (bool, error) {
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("master key: %w", err)
	}
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return false, fmt.Errorf("master key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".master.key.tmp*")
	if err != nil {
		return false, fmt.Errorf("master key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n")
	for _, err := range []error{werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()} {
		if err != nil {
			return false, fmt.Errorf("master key: write %s: %w", path, err)
		}
	}
	// Link fails if another process created the key meanwhile; theirs wins.
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("master key: install %s: %w", path, err)
	}
	return true, nil
}
