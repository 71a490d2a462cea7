package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
	"github.com/gatehouse-dev/gatehouse/store"
)

// TestCopyToRedis copies an embedded store with permanent, expiring and
// expired keys (more than one pipeline's worth) and checks values and
// remaining lifetimes in Redis.
func TestCopyToRedis(t *testing.T) {
	ctx := t.Context()
	clock := &fakeClock{now: time.Now()}
	b, err := store.OpenBoltWith(filepath.Join(t.TempDir(), "state.db"), store.BoltOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const many = 1200
	for i := range many {
		if err := b.Set(ctx, fmt.Sprintf("session/%04d", i), []byte{byte(i), 0, 0xff}, 0); err != nil {
			t.Fatal(err)
		}
	}
	set := func(key, value string, ttl time.Duration) {
		if err := b.Set(ctx, key, []byte(value), ttl); err != nil {
			t.Fatal(err)
		}
	}
	set("approval/x", "granted", time.Hour)
	set("ratelimit/y", "3", time.Minute)
	set("gone", "old", time.Second)
	clock.Advance(2 * time.Second)

	srv := harness.StartRedis(t)
	r := openRedis(t, store.RedisOptions{Addr: srv.Addr, Prefix: "gatehouse:"})
	got, err := store.CopyToRedis(ctx, b, r)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.MigrateCounts{Copied: many + 2, WithTTL: 2, Expired: 1}); got != want {
		t.Errorf("CopyToRedis = %+v, want %+v", got, want)
	}
	kvs, err := r.List(ctx, "session/")
	if err != nil || len(kvs) != many {
		t.Fatalf("List(session/) = %d keys, %v; want %d", len(kvs), err, many)
	}
	if v := kvs[258].Value; kvs[258].Key != "session/0258" || string(v) != string([]byte{2, 0, 0xff}) {
		t.Errorf("session/0258 = %q %q", kvs[258].Key, v)
	}
	for key, want := range map[string][2]time.Duration{
		"session/0000": {0, 0},
		"approval/x":   {time.Hour - 3*time.Second, time.Hour - 2*time.Second},
		"ratelimit/y":  {time.Minute - 3*time.Second, time.Minute - 2*time.Second},
	} {
		ttl, err := r.TTL(ctx, key)
		if err != nil || ttl < want[0] || ttl > want[1] {
			t.Errorf("TTL(%s) = %v, %v; want in [%v, %v]", key, ttl, err, want[0], want[1])
		}
	}
	if _, err := r.TTL(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired key copied: TTL(gone) = %v", err)
	}

	// A second run would merge into live state: refused, nothing written.
	set("new", "v", 0)
	if _, err := store.CopyToRedis(ctx, b, r); !errors.Is(err, store.ErrTargetNotEmpty) {
		t.Errorf("second CopyToRedis = %v, want ErrTargetNotEmpty", err)
	}
	if _, err := r.Get(ctx, "new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused CopyToRedis wrote a key: %v", err)
	}
	// Another prefix is another, empty namespace.
	other := openRedis(t, store.RedisOptions{Addr: srv.Addr, Prefix: "staging:"})
	if got, err := store.CopyToRedis(ctx, b, other); err != nil || got.Copied != many+3 {
		t.Errorf("CopyToRedis(other prefix) = %+v, %v", got, err)
	}
}
