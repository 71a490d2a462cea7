package identity

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
)

// listCounter counts List calls on the store.
type listCounter struct {
	*store.Bolt
	lists atomic.Int64
}

func (c *listCounter) List(ctx context.Context, prefix string) ([]store.KV, error) {
	c.lists.Add(1)
	return c.Bolt.List(ctx, prefix)
}

func newLocksOver(t *testing.T, e *env, st kvStore) *Locks {
	t.Helper()
	d := e.d
	d.Store = st
	m, err := NewSessions(d, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKeyBindings(d)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLocks(d, m, k)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLocksAllReadsTheIndex checks that the periodic re-check's All sees
// every lock and no lifted one, lists the store only on its first call
// (folding in a lock written without the index), and ignores an index
// entry whose lock is gone.
func TestLocksAllReadsTheIndex(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	st := &listCounter{Bolt: e.st}
	// A lock from before the index: only its key.
	if err := e.st.Set(ctx, lockKey("old@example.com"), []byte(`{}`), 0); err != nil {
		t.Fatal(err)
	}
	l := newLocksOver(t, e, st)
	if err := l.Place(ctx, PersonLock("ann@example.com"), "sec", "r"); err != nil {
		t.Fatal(err)
	}
	if err := l.Place(ctx, KeyLock(fp1), "sec", "r"); err != nil {
		t.Fatal(err)
	}
	if err := l.Place(ctx, TargetLock("prod-db"), "sec", "r"); err != nil {
		t.Fatal(err)
	}
	if err := l.Lift(ctx, KeyLock(fp1), "sec"); err != nil {
		t.Fatal(err)
	}
	st.lists.Store(0) // locking a person lists her sessions and keys
	for round := range 3 {
		set, err := l.All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []LockRef{PersonLock("ann@example.com"), PersonLock("old@example.com"), TargetLock("prod-db")} {
			if !set.m[want] {
				t.Errorf("round %d: All misses %v", round, want)
			}
		}
		if set.Len() != 3 {
			t.Errorf("round %d: All = %v, want 3 locks (the lifted key lock gone)", round, set.m)
		}
	}
	if n := st.lists.Load(); n != 1 {
		t.Errorf("All listed the store %d times in 3 calls, want once (the first)", n)
	}
	// An index entry whose lock vanished (a crash mid-unlock) is no lock.
	if err := e.st.Delete(ctx, TargetLock("prod-db").storeKey()); err != nil {
		t.Fatal(err)
	}
	if set, err := l.All(ctx); err != nil || set.m[TargetLock("prod-db")] {
		t.Errorf("All = %v, %v; want the vanished target lock gone", set.m, err)
	}
}

// TestLocksIndexConcurrent checks that locks placed at once on several
// replicas (Locks over one store) all reach the index.
func TestLocksIndexConcurrent(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	replicas := []*Locks{newLocksOver(t, e, e.st), newLocksOver(t, e, e.st), newLocksOver(t, e, e.st)}
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			r := TargetLock(fmt.Sprintf("t%02d", i))
			if err := replicas[i%len(replicas)].Place(ctx, r, "sec", "r"); err != nil {
				t.Errorf("Place(%v): %v", r, err)
			}
		})
	}
	wg.Wait()
	set, err := replicas[0].All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 30 {
		t.Errorf("All = %d locks, want 30", set.Len())
	}
	// The index alone (no fold) names every one too.
	fresh := newLocksOver(t, e, e.st)
	fresh.folded.Store(true)
	if set, err := fresh.All(ctx); err != nil || set.Len() != 30 {
		t.Errorf("index names %d locks (%v), want 30", set.Len(), err)
	}
}

// TestLocksIndexPlaceLiftRace replays the order in which a Lift racing a
// Place of the same lock could drop the index entry of a lock that
// stands: Place's first index add, then Lift whole, then Place's write.
func TestLocksIndexPlaceLiftRace(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	r := TargetLock("prod-db")
	// Lift runs inside Place, between its first index add and its write:
	// a store whose Set of the lock key first runs the Lift.
	lifted := false
	var l *Locks
	st := &hookSet{Bolt: e.st, before: func(key string) {
		if key == r.storeKey() && !lifted {
			lifted = true
			if err := l.Lift(ctx, r, "sec"); err != nil {
				t.Errorf("Lift: %v", err)
			}
		}
	}}
	l = newLocksOver(t, e, st)
	l.folded.Store(true) // a running replica: no more folding
	if err := l.Place(ctx, r, "sec", "r"); err != nil {
		t.Fatal(err)
	}
	if _, held, err := l.Held(ctx, r); err != nil || !held {
		t.Fatalf("Held = %v, %v; want the lock standing", held, err)
	}
	if set, err := l.All(ctx); err != nil || !set.m[r] {
		t.Errorf("All = %v, %v; the standing lock is missing from the index", set.m, err)
	}
}

// hookSet runs before ahead of every Set.
type hookSet struct {
	*store.Bolt
	before func(key string)
}

func (h *hookSet) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	h.before(key)
	return h.Bolt.Set(ctx, key, v, ttl)
}
