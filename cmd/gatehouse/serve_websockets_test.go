package main

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// fakeLockLister returns set, or err, from All.
type fakeLockLister struct {
	mu  sync.Mutex
	set identity.LockSet
	err error
}

func (f *fakeLockLister) All(context.Context) (identity.LockSet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.set, f.err
}

// TestRecheckLocksEndsLockedPeople checks that the WebSocket re-check ends
// the locked people's tunnels at each tick (not before the first), ends
// nothing while the locks cannot be read, and stops with its context.
func TestRecheckLocksEndsLockedPeople(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		locks := &fakeLockLister{set: identity.NewLockSet(identity.PersonLock("ann@example.com"), identity.KeyLock("SHA256:x"))}
		var mu sync.Mutex
		var ended []string
		end := func(email string) { mu.Lock(); ended = append(ended, email); mu.Unlock() }
		got := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(ended) }
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { recheckLocks(ctx, locks, end, slog.New(slog.DiscardHandler)); close(done) }()

		time.Sleep(identity.LockRecheckEvery - time.Millisecond)
		synctest.Wait()
		if e := got(); len(e) != 0 {
			t.Fatalf("ended %v before the first tick", e)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if e := got(); !slices.Equal(e, []string{"ann@example.com"}) {
			t.Fatalf("after one tick ended %v, want ann only (a key lock is SSH's)", e)
		}
		locks.mu.Lock()
		locks.err = errors.New("store down")
		locks.mu.Unlock()
		time.Sleep(identity.LockRecheckEvery)
		synctest.Wait()
		if e := got(); len(e) != 1 {
			t.Fatalf("ended %v while the locks could not be read", e)
		}
		cancel()
		<-done
	})
}
