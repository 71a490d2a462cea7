package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// Backend keeps sealed values by name. Implementations MUST be safe for
// concurrent use, by several processes too (replicas): SetNX is the one
// operation on which concurrent creators agree.
type Backend interface {
	// Get returns the value stored under name, or an error wrapping
	// fs.ErrNotExist when there is none.
	Get(ctx context.Context, name string) ([]byte, error)
	// SetNX stores value under name only if there is none yet, and
	// reports whether it did.
	SetNX(ctx context.Context, name string, value []byte) (bool, error)
	// Set stores value under name, replacing what was there (rekey).
	Set(ctx context.Context, name string, value []byte) error
}

// Spec names one secret key and says how to make and check it.
type Spec struct {
	// Name is a slash-separated name, unique among the keys of a
	// deployment: "ssh/host_ca_ed25519" is the file ssh/host_ca_ed25519.sealed
	// in a Dir backend and the store key of the same name in a store.
	Name string
	// Purpose binds the sealed value to Name (see Keyring.Seal), so that
	// one sealed key cannot be swapped in for another. It never changes
	// once keys were sealed with it.
	Purpose string
	// New generates a fresh key on first use. Nil: the key is never
	// created, only imported or migrated (migrate-store).
	New func() ([]byte, error)
	// Check validates a key's plaintext before it is sealed or returned.
	// Nil accepts any.
	Check func([]byte) error
}

// VaultConfig configures a Vault.
type VaultConfig struct {
	// Keyring seals and opens the keys. Required.
	Keyring *Keyring
	// Backend keeps the sealed keys. Required.
	Backend Backend
	// Import, if set, holds sealed keys from an earlier home (a single
	// host's data_dir when it moves to Redis): a key absent from Backend
	// but present here is copied into Backend on first use, so the CAs
	// that targets and users already trust stay the same.
	Import Backend
	// PlainDir, if set, is where older releases kept keys in the clear (the
	// file Name, no extension). Such a key is sealed into Backend on first
	// use and its plaintext file removed.
	PlainDir string
	// Logger receives the migration warnings; nil discards them.
	Logger *slog.Logger
}

// Vault keeps named secret keys sealed at rest in a Backend, creates each
// on first use (the first creator wins: concurrent creators, replicas
// included, all end up with the same key) and reseals them for rekey. It
// is safe for concurrent use.
type Vault struct {
	c VaultConfig
}

// NewVault checks c and returns a Vault over it.
func NewVault(c VaultConfig) (*Vault, error) {
	if c.Keyring == nil {
		return nil, errors.New("secrets: no master keyring: keys are kept sealed")
	}
	if c.Backend == nil {
		return nil, errors.New("secrets: no key backend")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Vault{c: c}, nil
}

// LoadOrCreate returns the plaintext of s's key. A key not in the backend
// yet is imported (Import), migrated (plaintext in PlainDir) or generated
// (s.New), in that order, and stored with SetNX; if another creator got
// there first, its key is the one returned. With s.New nil and nothing to
// import or migrate, the error wraps fs.ErrNotExist.
func (v *Vault) LoadOrCreate(ctx context.Context, s Spec) ([]byte, error) {
	if s.Name == "" {
		return nil, errors.New("secrets: key with no name")
	}
	if plain, err := v.load(ctx, v.c.Backend, s); !errors.Is(err, fs.ErrNotExist) {
		return plain, err
	}
	sealed, legacy, err := v.initial(ctx, s)
	if err != nil {
		return nil, err
	}
	if _, err := v.c.Backend.SetNX(ctx, s.Name, sealed); err != nil {
		return nil, fmt.Errorf("key %s: store: %w", s.Name, err)
	}
	plain, err := v.load(ctx, v.c.Backend, s)
	if err != nil {
		return nil, err
	}
	if legacy != nil {
		v.dropPlaintext(s, legacy, plain)
	}
	return plain, nil
}

// initial returns the sealed value a new key starts with and, when it
// comes from a plaintext file, that file's content.
func (v *Vault) initial(ctx context.Context, s Spec) (sealed, legacy []byte, err error) {
	if v.c.Import != nil {
		b, err := v.c.Import.Get(ctx, s.Name)
		switch {
		case err == nil:
			// Opened before it is copied: a value sealed for another
			// purpose or with an unknown master key is refused here.
			if _, err := v.open(s, b); err != nil {
				return nil, nil, err
			}
			out, _, err := v.c.Keyring.Reseal(s.Purpose, b)
			if err == nil {
				v.c.Logger.Warn("Imported a sealed key from data_dir into the shared store.", "key", s.Name)
			}
			return out, nil, err
		case !errors.Is(err, fs.ErrNotExist):
			return nil, nil, fmt.Errorf("key %s: import: %w", s.Name, err)
		}
	}
	plain, err := v.plaintext(s)
	legacy = plain
	switch {
	case errors.Is(err, fs.ErrNotExist) && s.New != nil:
		if plain, err = s.New(); err != nil {
			return nil, nil, fmt.Errorf("key %s: generate: %w", s.Name, err)
		}
	case err != nil:
		return nil, nil, err
	}
	if s.Check != nil {
		if err := s.Check(plain); err != nil {
			return nil, nil, fmt.Errorf("key %s: %w", s.Name, err)
		}
	}
	sealed, err = v.c.Keyring.Seal(s.Purpose, plain)
	if err != nil {
		return nil, nil, fmt.Errorf("key %s: %w", s.Name, err)
	}
	return sealed, legacy, nil
}

// plaintext reads s's key as an older release left it in PlainDir.
func (v *Vault) plaintext(s Spec) ([]byte, error) {
	if v.c.PlainDir == "" {
		return nil, fmt.Errorf("key %s: %w", s.Name, fs.ErrNotExist)
	}
	return readPrivate(v.plainPath(s))
}

func (v *Vault) plainPath(s Spec) string {
	return filepath.Join(v.c.PlainDir, filepath.FromSlash(s.Name))
}

// dropPlaintext removes the plaintext file a key was migrated from, but
// only if the stored key is that same key: if another creator won with a
// different one, the file is kept (and said so) rather than lost.
func (v *Vault) dropPlaintext(s Spec, legacy, stored []byte) {
	path := v.plainPath(s)
	if !bytes.Equal(legacy, stored) {
		v.c.Logger.Warn("A plaintext key file differs from the sealed key in use; it was left in place: remove it once it is no longer needed.", "file", path)
		return
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		v.c.Logger.Error("Removing a plaintext key file failed; remove it by hand.", "file", path, "error", err)
		return
	}
	v.c.Logger.Warn("Sealed a plaintext key under the master key and removed the plaintext file.", "file", path, "key", s.Name)
}

// load reads and opens s's key from b.
func (v *Vault) load(ctx context.Context, b Backend, s Spec) ([]byte, error) {
	sealed, err := b.Get(ctx, s.Name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("key %s: %w", s.Name, err)
	}
	return v.open(s, sealed)
}

func (v *Vault) open(s Spec, sealed []byte) ([]byte, error) {
	plain, err := v.c.Keyring.Open(s.Purpose, sealed)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", s.Name, err)
	}
	if s.Check != nil {
		if err := s.Check(plain); err != nil {
			return nil, fmt.Errorf("key %s: %w", s.Name, err)
		}
	}
	return plain, nil
}

// Reseal seals every key of specs again with the current master key (and
// seals plaintext ones left by an older release) and returns how many it
// rewrote. Keys that do not exist yet are not created. `gatehouse rekey`
// runs it so that a previous master key can be dropped.
func (v *Vault) Reseal(ctx context.Context, specs ...Spec) (int, error) {
	n := 0
	for _, s := range specs {
		b, err := v.c.Backend.Get(ctx, s.Name)
		if errors.Is(err, fs.ErrNotExist) {
			// Absent, or still plaintext or in Import: loading moves it.
			s.New = nil
			_, err := v.LoadOrCreate(ctx, s)
			if err == nil {
				n++
			} else if !errors.Is(err, fs.ErrNotExist) {
				return n, err
			}
			continue
		}
		if err != nil {
			return n, fmt.Errorf("key %s: %w", s.Name, err)
		}
		out, changed, err := v.c.Keyring.Reseal(s.Purpose, b)
		if err != nil {
			return n, fmt.Errorf("key %s: %w", s.Name, err)
		}
		if !changed {
			continue
		}
		if err := v.c.Backend.Set(ctx, s.Name, out); err != nil {
			return n, fmt.Errorf("key %s: %w", s.Name, err)
		}
		n++
	}
	return n, nil
}
