package store_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

func openRedis(t *testing.T, opts store.RedisOptions) *store.Redis {
	t.Helper()
	r, err := store.OpenRedis(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func listKeys(t *testing.T, s store.Store, prefix string) []string {
	t.Helper()
	kvs, err := s.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q) = %v", prefix, err)
	}
	var keys []string
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
	}
	return keys
}

// TestRedisListGlobCharacters checks that List treats its prefix (and the
// namespace) literally although SCAN's MATCH is a glob pattern.
func TestRedisListGlobCharacters(t *testing.T) {
	srv := harness.StartRedis(t)
	r := openRedis(t, store.RedisOptions{Addr: srv.Addr, Prefix: "g[h]*:"})
	other := openRedis(t, store.RedisOptions{Addr: srv.Addr, Prefix: "gh:"})
	for _, k := range []string{"a*b/1", "axb/1", "a?b/1", "a[b]/1", "ab/1", `a\b/1`, "b/1"} {
		if err := r.Set(t.Context(), k, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	// "g[h]*:" as a pattern would match this store's keys too.
	if err := other.Set(t.Context(), "a*b/2", []byte("other"), 0); err != nil {
		t.Fatal(err)
	}
	tests := map[string][]string{
		"a*":  {"a*b/1"},
		"a?":  {"a?b/1"},
		"a[b": {"a[b]/1"},
		`a\`:  {`a\b/1`},
		"a":   {"a*b/1", "a?b/1", "a[b]/1", `a\b/1`, "ab/1", "axb/1"},
	}
	for prefix, want := range tests {
		if diff := cmp.Diff(want, listKeys(t, r, prefix)); diff != "" {
			t.Errorf("List(%q) mismatch (-want +got):\n%s", prefix, diff)
		}
	}
	if diff := cmp.Diff([]string{"a*b/2"}, listKeys(t, other, "")); diff != "" {
		t.Errorf("other namespace List mismatch (-want +got):\n%s", diff)
	}
}

// TestRedisSubMillisecondTTL checks that a ttl below Redis's millisecond
// unit still expires the key instead of becoming "no expiry".
func TestRedisSubMillisecondTTL(t *testing.T) {
	srv := harness.StartRedis(t)
	r := openRedis(t, store.RedisOptions{Addr: srv.Addr})
	ctx := t.Context()
	if err := r.Set(ctx, "k", []byte("v"), time.Microsecond); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Incr(ctx, "n", time.Microsecond); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.CompareAndSwap(ctx, "c", nil, []byte("v"), time.Microsecond); err != nil || !ok {
		t.Fatalf("CompareAndSwap = %v, %v", ok, err)
	}
	time.Sleep(50 * time.Millisecond) // real Redis expiry: there is no clock to advance
	for _, k := range []string{"k", "n", "c"} {
		if v, err := r.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%s) after its 1µs ttl = %q, %v; want ErrNotFound", k, v, err)
		}
	}
}

// TestRedisPassword checks that the password is sent and that a wrong one
// is reported by OpenRedis.
func TestRedisPassword(t *testing.T) {
	srv := harness.StartRedisWith(t, harness.RedisOptions{RequirePassword: true})
	if r, err := store.OpenRedis(store.RedisOptions{Addr: srv.Addr}); err == nil {
		r.Close()
		t.Fatal("OpenRedis without the password succeeded")
	}
	const canary = "canary-0e1f2a"
	if r, err := store.OpenRedis(store.RedisOptions{Addr: srv.Addr, Password: canary}); err == nil {
		r.Close()
		t.Fatal("OpenRedis with a wrong password succeeded")
	} else if strings.Contains(err.Error(), canary) {
		t.Errorf("error %q contains the password", err)
	}
	r := openRedis(t, store.RedisOptions{Addr: srv.Addr, Password: srv.Password})
	if err := r.Set(t.Context(), "k", []byte("v"), 0); err != nil {
		t.Fatalf("Set with the password = %v", err)
	}
}

// TestRedisUnreachable checks that a Redis that does not answer surfaces as
// errors within the timeout, at open and after a working start.
func TestRedisUnreachable(t *testing.T) {
	// A listener that accepts and never answers: the worst case, worse
	// than a refused connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	if r, err := store.OpenRedis(store.RedisOptions{Addr: ln.Addr().String(), Timeout: 200 * time.Millisecond}); err == nil {
		r.Close()
		t.Fatal("OpenRedis of a silent server succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("OpenRedis of a silent server took %v", d)
	}

	srv := harness.StartRedis(t)
	r := openRedis(t, store.RedisOptions{Addr: srv.Addr, Timeout: 200 * time.Millisecond})
	if err := r.Set(t.Context(), "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start = time.Now()
	ops := map[string]func(ctx context.Context) error{
		"Get":   func(ctx context.Context) error { _, err := r.Get(ctx, "k"); return err },
		"SetNX": func(ctx context.Context) error { _, err := r.SetNX(ctx, "l", []byte("x"), 0); return err },
		"Incr":  func(ctx context.Context) error { _, err := r.Incr(ctx, "n", 0); return err },
		"List":  func(ctx context.Context) error { _, err := r.List(ctx, ""); return err },
	}
	for name, op := range ops {
		if err := op(t.Context()); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s with Redis stopped = %v, want a connection error", name, err)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("operations with Redis stopped took %v", d)
	}
}

// TestRedisSharedAcrossClients checks what replicas rely on: two clients of
// one Redis see each other's keys and messages, and a single-use value is
// redeemed once between them.
func TestRedisSharedAcrossClients(t *testing.T) {
	srv := harness.StartRedis(t)
	a := openRedis(t, store.RedisOptions{Addr: srv.Addr, Prefix: "gh:"})
	b := openRedis(t, store.RedisOptions{Addr: srv.Addr, Prefix: "gh:"})
	ch, err := b.Subscribe(t.Context(), "lock")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Set(t.Context(), "approval/x", []byte("granted"), 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(t.Context(), "lock", []byte("alice")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		if string(m) != "alice" {
			t.Errorf("replica b received %q, want alice", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("replica b received nothing")
	}
	if v, err := b.GetDel(t.Context(), "approval/x"); err != nil || string(v) != "granted" {
		t.Fatalf("replica b GetDel = %q, %v", v, err)
	}
	if _, err := a.GetDel(t.Context(), "approval/x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("replica a redeemed the approval again: %v", err)
	}
}

// TestRedisGetManyFailsOnAnotherType: a key holding a hash (written by
// something else in the namespace) makes GetMany fail as Get does, instead
// of reading as absent: a lock check on it must fail closed.
func TestRedisGetManyFailsOnAnotherType(t *testing.T) {
	srv := harness.StartRedis(t)
	r := openRedis(t, store.RedisOptions{Addr: srv.Addr, Prefix: "gh:"})
	ctx := t.Context()
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { raw.Close() })
	if err := raw.HSet(ctx, "gh:lock/key/x", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(ctx, "lock/key/y", []byte("held"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "lock/key/x"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a hash = %v, want an error", err)
	}
	if got, err := r.GetMany(ctx, "lock/key/y", "lock/key/x"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetMany with a hash among the keys = %q, %v; want an error", got, err)
	}
}
