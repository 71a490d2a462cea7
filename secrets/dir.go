package secrets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// sealedExt ends the name of every sealed key file.
const sealedExt = ".sealed"

// Dir is a Backend over files in a directory (a single host's data_dir):
// the key Name is the file Name+".sealed", mode 0600, its directories
// created 0700. Creation writes a temporary file and hard-links it into
// place, so concurrent creators (serve and ssh-config) agree: the first
// link wins. Files that group or others may read are refused.
type Dir string

var _ Backend = Dir("")

func (d Dir) path(name string) (string, error) {
	if d == "" {
		return "", errors.New("secrets: key directory is not set")
	}
	clean := filepath.ToSlash(filepath.Clean(filepath.FromSlash(name)))
	if name == "" || clean != name || strings.HasPrefix(name, "/") || strings.HasPrefix(name, "../") || name == ".." {
		return "", fmt.Errorf("secrets: bad key name %q", name)
	}
	return filepath.Join(string(d), filepath.FromSlash(name)+sealedExt), nil
}

// Get reads name's sealed file.
func (d Dir) Get(_ context.Context, name string) ([]byte, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	return readPrivate(p)
}

// SetNX installs name's file unless it exists.
func (d Dir) SetNX(_ context.Context, name string, value []byte) (bool, error) {
	return d.install(name, value, false)
}

// Set replaces name's file atomically (rename over it).
func (d Dir) Set(_ context.Context, name string, value []byte) error {
	_, err := d.install(name, value, true)
	return err
}

func (d Dir) install(name string, data []byte, replace bool) (bool, error) {
	path, err := d.path(name)
	if err != nil {
		return false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("create key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return false, fmt.Errorf("create %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	for _, err := range []error{werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()} {
		if err != nil {
			return false, fmt.Errorf("write %s: %w", name, err)
		}
	}
	if replace {
		if err := os.Rename(tmp.Name(), path); err != nil {
			return false, fmt.Errorf("install %s: %w", name, err)
		}
		return true, nil
	}
	// Link fails if another creator got there first; theirs wins.
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("install %s: %w", name, err)
	}
	return true, nil
}

// readPrivate reads path, insisting that group and others cannot read it.
func readPrivate(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key %s: mode %v is too open (want 0600)", path, fi.Mode().Perm())
	}
	return os.ReadFile(path)
}
