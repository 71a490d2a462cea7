package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	bolt "go.etcd.io/bbolt"
)

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func openTest(t *testing.T, path string, opts BoltOptions) *Bolt {
	t.Helper()
	b, err := OpenBoltWith(path, opts)
	if err != nil {
		t.Fatalf("OpenBoltWith(%s) = %v", path, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestOpenBoltCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	path := filepath.Join(dir, "store.db")
	b := openTest(t, path, BoltOptions{})
	b.Close()
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {filepath.Dir(dir), 0o700}, {path, 0o600}} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != tc.want {
			t.Errorf("mode of %s = %v, want %v", tc.path, got, tc.want)
		}
	}

	// An existing store file readable by others is made owner-only.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	openTest(t, path, BoltOptions{}).Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after reopen = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestOpenBoltInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	first := openTest(t, path, BoltOptions{})

	start := time.Now()
	second, err := OpenBoltWith(path, BoltOptions{LockTimeout: 200 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("second OpenBoltWith succeeded while the first holds the file")
	}
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "data directory is in use by another gatehouse") {
		t.Errorf("second open error = %q, want ErrInUse with a clear message", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("second open took %v, want about the lock timeout", elapsed)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openTest(t, path, BoltOptions{LockTimeout: 200 * time.Millisecond})
}

func TestBoltPersistsAcrossReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "store.db")
	clock := &testClock{now: time.Unix(1_000_000, 0)}
	b := openTest(t, path, BoltOptions{Now: clock.Now})
	if err := b.Set(ctx, "keep", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, "brief", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openTest(t, path, BoltOptions{Now: clock.Now})
	for _, key := range []string{"keep", "brief"} {
		if v, err := b.Get(ctx, key); err != nil || string(v) != "v" {
			t.Errorf("after reopen Get(%s) = %q, %v; want v", key, v, err)
		}
	}
	// The expiry was stored with the value, so it survives the restart.
	b.Close()
	clock.Advance(2 * time.Minute)
	b = openTest(t, path, BoltOptions{Now: clock.Now})
	if _, err := b.Get(ctx, "brief"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(brief) after its ttl across a restart = %v, want ErrNotFound", err)
	}
}

// countKeys returns the number of raw entries in the kv and expiry buckets.
func countKeys(t *testing.T, b *Bolt) (kv, exp int) {
	t.Helper()
	err := b.db.View(func(tx *bolt.Tx) error {
		kv = tx.Bucket(kvBucket).Stats().KeyN
		exp = tx.Bucket(expBucket).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return kv, exp
}

func TestSweepDeletesExpiredKeys(t *testing.T) {
	ctx := t.Context()
	clock := &testClock{now: time.Unix(1_000_000, 0)}
	// A long interval: the test calls sweep itself.
	b := openTest(t, filepath.Join(t.TempDir(), "store.db"), BoltOptions{Now: clock.Now, SweepInterval: time.Hour})

	const expiring = 2*sweepBatch + 17 // more than one batch
	err := b.db.Update(func(tx *bolt.Tx) error {
		tn := newTxn(tx, clock.Now())
		for i := range expiring {
			if err := tn.put(fmt.Appendf(nil, "tmp/%05d", i), []byte("x"), tn.expiry(time.Minute)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"keep/a", "keep/b"} {
		if err := b.Set(ctx, k, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Set(ctx, "later", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	// A key that had a ttl and was rewritten without one must survive.
	if err := b.Set(ctx, "tmp/00000", []byte("now permanent"), 0); err != nil {
		t.Fatal(err)
	}

	if n, err := b.sweep(); err != nil || n != 0 {
		t.Fatalf("sweep before expiry = %d, %v; want 0", n, err)
	}
	clock.Advance(2 * time.Minute)
	if n, err := b.sweep(); err != nil || n != expiring-1 {
		t.Fatalf("sweep = %d, %v; want %d", n, err, expiring-1)
	}
	kv, exp := countKeys(t, b)
	if kv != 4 || exp != 1 {
		t.Errorf("after sweep: %d keys, %d index entries; want 4 and 1", kv, exp)
	}
	if v, err := b.Get(ctx, "tmp/00000"); err != nil || string(v) != "now permanent" {
		t.Errorf("Get(rewritten key) = %q, %v", v, err)
	}
}

// In a synctest bubble time.Now is fake, so the store's default clock and
// the sweeper's ticker move together and synctest.Wait says when a sweep is
// over.
func TestSweeperRunsInBackgroundAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		b := openTest(t, filepath.Join(t.TempDir(), "store.db"), BoltOptions{})
		if err := b.Set(ctx, "tmp", []byte("x"), time.Second); err != nil {
			t.Fatal(err)
		}
		// Expired after a second, but only the sweep deletes it from disk.
		time.Sleep(defaultSweepInterval - time.Millisecond)
		synctest.Wait()
		if kv, _ := countKeys(t, b); kv != 1 {
			t.Fatalf("before the first sweep: %d keys on disk, want 1", kv)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if kv, exp := countKeys(t, b); kv != 0 || exp != 0 {
			t.Fatalf("after the first sweep: %d keys, %d index entries; want none", kv, exp)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-b.swept:
		default:
			t.Error("sweeper still running after Close")
		}
		if err := b.Close(); err != nil {
			t.Errorf("second Close = %v, want nil", err)
		}
		if err := b.Set(context.Background(), "k", nil, 0); !errors.Is(err, ErrClosed) {
			t.Errorf("Set after Close = %v, want ErrClosed", err)
		}
	})
}

func TestCorruptValueIsAnError(t *testing.T) {
	b := openTest(t, filepath.Join(t.TempDir(), "store.db"), BoltOptions{})
	err := b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(kvBucket).Put([]byte("bad"), []byte{1, 2}) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(t.Context(), "bad"); !errors.Is(err, errCorrupt) {
		t.Errorf("Get(corrupt) = %v, want errCorrupt", err)
	}
	if _, err := b.List(t.Context(), ""); !errors.Is(err, errCorrupt) {
		t.Errorf("List(corrupt) = %v, want errCorrupt", err)
	}
}

// In a synctest bubble the ctx deadline is fake time and synctest.Wait says
// when a Publish is blocked.
func TestPublishWaitsForSlowSubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := openTest(t, filepath.Join(t.TempDir(), "store.db"), BoltOptions{})
		subCtx, unsubscribe := context.WithCancel(t.Context())
		ch, err := b.Subscribe(subCtx, "c")
		if err != nil {
			t.Fatal(err)
		}
		for i := range subBuffer {
			if err := b.Publish(t.Context(), "c", []byte{byte(i)}); err != nil {
				t.Fatalf("Publish %d into the buffer = %v", i, err)
			}
		}
		// The buffer is full: Publish waits rather than drop, bounded by ctx.
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if err := b.Publish(ctx, "c", []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Publish to a full subscriber = %v, want DeadlineExceeded", err)
		}
		// Once the subscriber reads, the next Publish goes through.
		if m := <-ch; len(m) != 1 || m[0] != 0 {
			t.Fatalf("first message = %v, want [0]", m)
		}
		if err := b.Publish(t.Context(), "c", []byte("y")); err != nil {
			t.Fatalf("Publish after a read = %v", err)
		}
		// A Publish blocked on a subscriber that leaves returns.
		done := make(chan error, 1)
		go func() { done <- b.Publish(t.Context(), "c", []byte("z")) }()
		synctest.Wait() // Publish is blocked on the full buffer
		select {
		case err := <-done:
			t.Fatalf("Publish to a full subscriber returned %v before it left", err)
		default:
		}
		unsubscribe()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Publish to a leaving subscriber = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Publish stayed blocked after the subscriber left")
		}
	})
}
