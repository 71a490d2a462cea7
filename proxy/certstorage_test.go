package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// memKV is an in-memory CertKV with store.Store's semantics, expiry judged
// by time.Now (the fake clock inside a synctest bubble).
type memKV struct {
	mu sync.Mutex
	m  map[string]memEntry
}

type memEntry struct {
	v   []byte
	exp time.Time // zero: never
}

func newMemKV() *memKV { return &memKV{m: make(map[string]memEntry)} }

func (k *memKV) live(key string) (memEntry, bool) {
	e, ok := k.m[key]
	if ok && !e.exp.IsZero() && !time.Now().Before(e.exp) {
		delete(k.m, key)
		return memEntry{}, false
	}
	return e, ok
}

func (k *memKV) put(key string, v []byte, ttl time.Duration) {
	e := memEntry{v: bytes.Clone(v)}
	if ttl > 0 {
		e.exp = time.Now().Add(ttl)
	}
	k.m[key] = e
}

func (k *memKV) Get(_ context.Context, key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.live(key)
	if !ok {
		return nil, fmt.Errorf("memkv %s: %w", key, fs.ErrNotExist)
	}
	return bytes.Clone(e.v), nil
}

func (k *memKV) Set(_ context.Context, key string, v []byte, ttl time.Duration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.put(key, v, ttl)
	return nil
}

func (k *memKV) SetNX(_ context.Context, key string, v []byte, ttl time.Duration) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.live(key); ok {
		return false, nil
	}
	k.put(key, v, ttl)
	return true, nil
}

func (k *memKV) CompareAndSwap(_ context.Context, key string, old, v []byte, ttl time.Duration) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.live(key)
	if (old == nil && ok) || (old != nil && (!ok || !bytes.Equal(e.v, old))) {
		return false, nil
	}
	k.put(key, v, ttl)
	return true, nil
}

func (k *memKV) Delete(_ context.Context, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, key)
	return nil
}

func (k *memKV) Keys(_ context.Context, prefix string) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for key := range k.m {
		if _, ok := k.live(key); ok && strings.HasPrefix(key, prefix) {
			out = append(out, key)
		}
	}
	slices.Sort(out)
	return out, nil
}

func TestCertStorageFiles(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewCertStorage(newMemKV(), CertStorageOptions{Now: func() time.Time { return now }})
	files := []struct{ key, value string }{
		{"acme/ca/users/a@x/a.json", "account a"},
		{"acme/ca/users/b@x/b.json", "account b"}, // an hour later: the newer account
		{"certificates/ca/x.com/x.crt", "cert"},
		{"certificates/ca/x.com/x.key", "key"},
		{"certificates/ca/y.com/y.json", "meta"},
	}
	for i, f := range files {
		if i == 1 {
			now = now.Add(time.Hour)
		}
		if err := s.Store(ctx, f.key, []byte(f.value)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Load(ctx, "certificates/ca/x.com/x.key"); err != nil || string(got) != "key" {
		t.Errorf("Load = %q, %v", got, err)
	}
	if _, err := s.Load(ctx, "certificates/ca/z.com/z.key"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(absent) = %v, want fs.ErrNotExist", err)
	}
	for key, want := range map[string]bool{
		"certificates/ca/x.com/x.crt": true, "certificates/ca/x.com": true, "certificates": true,
		"certificates/ca/x.co": false, "certificates/ca/x.com/x": false, "nothing": false,
	} {
		if got := s.Exists(ctx, key); got != want {
			t.Errorf("Exists(%q) = %v, want %v", key, got, want)
		}
	}
	list := func(dir string, recursive bool) []string {
		got, err := s.List(ctx, dir, recursive)
		if err != nil {
			t.Fatalf("List(%q, %v) = %v", dir, recursive, err)
		}
		return got
	}
	if diff := cmp.Diff([]string{"certificates/ca/x.com", "certificates/ca/y.com"}, list("certificates/ca", false)); diff != "" {
		t.Errorf("List(certificates/ca) (-want +got):\n%s", diff)
	}
	want := []string{"certificates/ca", "certificates/ca/x.com", "certificates/ca/x.com/x.crt",
		"certificates/ca/x.com/x.key", "certificates/ca/y.com", "certificates/ca/y.com/y.json"}
	if diff := cmp.Diff(want, list("certificates", true)); diff != "" {
		t.Errorf("List(certificates, recursive) (-want +got):\n%s", diff)
	}
	if _, err := s.List(ctx, "nothing", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List(absent) = %v, want fs.ErrNotExist", err)
	}

	// Stat: files are terminal with their size; a directory's time is its
	// newest file's, which certmagic uses to pick the newest account.
	fi, err := s.Stat(ctx, "certificates/ca/x.com/x.crt")
	if err != nil || !fi.IsTerminal || fi.Size != 4 {
		t.Errorf("Stat(file) = %+v, %v", fi, err)
	}
	a, errA := s.Stat(ctx, "acme/ca/users/a@x")
	b, errB := s.Stat(ctx, "acme/ca/users/b@x")
	if errA != nil || errB != nil || a.IsTerminal || !b.Modified.After(a.Modified) {
		t.Errorf("Stat(dirs) = %+v %v, %+v %v; want directories, b newer", a, errA, b, errB)
	}

	// Deleting a directory deletes what is under it, and nothing beside.
	if err := s.Delete(ctx, "certificates/ca/x.com"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"certificates/ca/y.com"}, list("certificates/ca", false)); diff != "" {
		t.Errorf("List after Delete (-want +got):\n%s", diff)
	}
	if err := s.Delete(ctx, "never/was"); err != nil {
		t.Errorf("Delete(absent) = %v", err)
	}
}

// locked reports whether done has been closed.
func locked(done <-chan error) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// TestCertStorageLockContention has two replicas' storages over one store
// contend for a lock: the second waits while the first holds it, for many
// TTLs (the holder refreshes), and gets it once the first unlocks.
func TestCertStorageLockContention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		kv := newMemKV()
		opts := CertStorageOptions{LockTTL: 30 * time.Second, PollInterval: time.Second}
		a, b := NewCertStorage(kv, opts), NewCertStorage(kv, opts)
		if err := a.Lock(ctx, "issue_cert_x.com"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- b.Lock(ctx, "issue_cert_x.com") }()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if locked(done) {
			t.Fatal("b took the lock a holds")
		}
		if ok, err := b.TryLock(ctx, "issue_cert_x.com"); err != nil || ok {
			t.Fatalf("b.TryLock of a held lock = %v, %v", ok, err)
		}
		if err := a.RenewLockLease(ctx, "issue_cert_x.com", time.Minute); err != nil {
			t.Errorf("a.RenewLockLease while holding = %v", err)
		}
		// A different name is independent.
		if ok, err := b.TryLock(ctx, "issue_cert_y.com"); err != nil || !ok {
			t.Fatalf("b.TryLock(other name) = %v, %v", ok, err)
		}
		if err := a.Unlock(ctx, "issue_cert_x.com"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(opts.PollInterval)
		synctest.Wait()
		if !locked(done) {
			t.Fatal("b did not get the lock within a poll interval of a's Unlock")
		}
		if ok, err := a.TryLock(ctx, "issue_cert_x.com"); err != nil || ok {
			t.Fatalf("a.TryLock while b holds = %v, %v", ok, err)
		}
		for _, name := range []string{"issue_cert_x.com", "issue_cert_y.com"} {
			if err := b.Unlock(ctx, name); err != nil {
				t.Errorf("b.Unlock(%s) = %v", name, err)
			}
		}
	})
}

// TestCertStorageLockCrashedHolder checks that a lock whose holder stopped
// refreshing it (a crashed replica) frees itself after the TTL, not before.
func TestCertStorageLockCrashedHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		kv := newMemKV()
		opts := CertStorageOptions{LockTTL: 30 * time.Second, PollInterval: time.Second}
		// What a crashed replica leaves: the lock key, no refresher.
		if _, err := kv.SetNX(ctx, certLockPrefix+"issue_cert_x.com", []byte("dead"), opts.LockTTL); err != nil {
			t.Fatal(err)
		}
		b := NewCertStorage(kv, opts)
		done := make(chan error, 1)
		go func() { done <- b.Lock(ctx, "issue_cert_x.com") }()
		time.Sleep(opts.LockTTL - 2*time.Second)
		synctest.Wait()
		if locked(done) {
			t.Fatal("b took the lock before it expired")
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if !locked(done) {
			t.Fatal("b did not take the expired lock")
		}
		if err := b.Unlock(ctx, "issue_cert_x.com"); err != nil {
			t.Error(err)
		}
	})
}

// TestCertStorageLockLost checks that a holder whose lock was taken over
// learns it: certmagic's lease renewal and Unlock fail, and Unlock leaves
// the new holder's lock alone.
func TestCertStorageLockLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		kv := newMemKV()
		a := NewCertStorage(kv, CertStorageOptions{})
		if err := a.Lock(ctx, "n"); err != nil {
			t.Fatal(err)
		}
		if err := kv.Set(ctx, certLockPrefix+"n", []byte("someone else"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := a.RenewLockLease(ctx, "n", time.Minute); !errors.Is(err, errCertLockLost) {
			t.Errorf("RenewLockLease of a lost lock = %v, want errCertLockLost", err)
		}
		if err := a.Unlock(ctx, "n"); !errors.Is(err, errCertLockLost) {
			t.Errorf("Unlock of a lost lock = %v, want errCertLockLost", err)
		}
		if v, err := kv.Get(ctx, certLockPrefix+"n"); err != nil || string(v) != "someone else" {
			t.Errorf("the new holder's lock = %q, %v; want it untouched", v, err)
		}
		if err := a.Unlock(ctx, "never-locked"); err == nil {
			t.Error("Unlock of a lock never taken = nil, want an error")
		}
	})
}
