//go:build unix

package audit

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on f, so that a second gatehouse
// on the same data directory cannot fork the chain. The lock is released
// when f is closed.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errors.New("in use by another gatehouse (its lock is held)")
	}
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	return nil
}
