package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// ensureDataDir creates dir with mode 0700 if it is missing, and otherwise
// refuses it unless it is a directory owned by this user that group and
// others cannot reach: it holds keys, sessions and recordings. Fail closed:
// a loose mode is an error to fix, not something to fix silently.
func ensureDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("data_dir: %w", err)
		}
		// MkdirAll applies the umask; make the mode exact.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("data_dir: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data_dir %s: not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("data_dir %s has mode %04o: group and others must have no access (chmod 700 %s)", dir, perm, dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("data_dir %s is owned by uid %d, not by this process (uid %d)", dir, st.Uid, os.Geteuid())
	}
	return nil
}
