package proxy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"
)

// errCertLockLost reports that a lock expired or was taken while held:
// another replica may now do the same work.
var errCertLockLost = errors.New("lock lost")

// certLock is a lock this process holds: its token (the value of the lock
// key, unique to this acquisition) and its refresher.
type certLock struct {
	key   string
	token []byte
	stop  chan struct{} // closed by Unlock
	done  chan struct{} // closed when the refresher has exited
}

// Lock takes the named lock, waiting while another holder (in this process
// or another replica) has it, until ctx ends. The lock key expires after
// LockTTL unless refreshed, so a holder that crashes does not block the
// others for longer than that; while held, a goroutine refreshes it.
func (s *CertStorage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(s.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// TryLock takes the named lock if it is free and reports whether it did.
func (s *CertStorage) TryLock(ctx context.Context, name string) (bool, error) {
	l := &certLock{
		key:   certLockPrefix + name,
		token: []byte(rand.Text()),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	ok, err := s.kv.SetNX(ctx, l.key, l.token, s.ttl)
	if err != nil {
		return false, fmt.Errorf("certificate storage: lock %s: %w", name, err)
	}
	if !ok {
		return false, nil
	}
	s.mu.Lock()
	s.held[name] = l
	s.mu.Unlock()
	go s.refresh(name, l)
	return true, nil
}

// refresh extends l every third of the TTL until Unlock, so the lock
// survives two failed refreshes in a row (a Redis blip) but not a crash.
func (s *CertStorage) refresh(name string, l *certLock) {
	defer close(l.done)
	t := time.NewTicker(s.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.ttl/3)
		err := s.extend(ctx, l, s.ttl)
		cancel()
		switch {
		case errors.Is(err, errCertLockLost):
			s.logger.Error("Certificate lock lost while held; another replica may repeat the work.", "lock", name)
			return
		case err != nil:
			s.logger.Warn("Failed to refresh a certificate lock.", "lock", name, "error", err)
		}
	}
}

// extend resets l's expiry to ttl if the lock is still l's.
func (s *CertStorage) extend(ctx context.Context, l *certLock, ttl time.Duration) error {
	ok, err := s.kv.CompareAndSwap(ctx, l.key, l.token, l.token, ttl)
	if err != nil {
		return err
	}
	if !ok {
		return errCertLockLost
	}
	return nil
}

// RenewLockLease is certmagic's check between attempts of a long
// operation: it extends the lock and fails if the lock was lost, so that
// certmagic stops rather than order alongside another replica.
func (s *CertStorage) RenewLockLease(ctx context.Context, name string, lease time.Duration) error {
	s.mu.Lock()
	l := s.held[name]
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("certificate storage: renew lock %s: %w (not held here)", name, errCertLockLost)
	}
	if err := s.extend(ctx, l, max(lease, s.ttl)); err != nil {
		return fmt.Errorf("certificate storage: renew lock %s: %w", name, err)
	}
	return nil
}

// Unlock releases the named lock if this process still holds it. The
// interface has no compare-and-delete, so it swaps the token for a value
// that expires at once: atomic, so a lock that meanwhile expired and went
// to another replica is left alone.
func (s *CertStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	l := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("certificate storage: unlock %s: not held", name)
	}
	close(l.stop)
	<-l.done
	ok, err := s.kv.CompareAndSwap(ctx, l.key, l.token, []byte("released"), time.Millisecond)
	if err != nil {
		return fmt.Errorf("certificate storage: unlock %s: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("certificate storage: unlock %s: %w before release", name, errCertLockLost)
	}
	return nil
}
