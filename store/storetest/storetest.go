// Package storetest is the conformance suite that every store.Store
// implementation runs, so that the embedded and the Redis store behave the
// same way behind the interface.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Harness describes the implementation under test.
type Harness struct {
	// Open returns a new, empty store for one test. The suite closes it.
	// Tests run in parallel, so Open may be called concurrently and each
	// store it returns must be isolated from the others.
	Open func(t *testing.T) store.Store
	// Advance moves the clock of s, a store returned by Open, forward by d.
	// If nil, the suite sleeps for d in real time.
	Advance func(s store.Store, d time.Duration)
}

// ttl is the lifetime of the suite's expiring keys. It is short so that a
// real-time run stays fast, and long enough that a key written just before a
// check has not expired yet on a loaded machine.
const ttl = 400 * time.Millisecond

// Run runs the suite against stores from open, waiting in real time for keys
// to expire.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	RunHarness(t, Harness{Open: open})
}

// RunHarness runs the suite described by h.
func RunHarness(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *subject)
	}{
		{"GetSetDelete", testGetSetDelete},
		{"GetMany", testGetMany},
		{"SetMany", testSetMany},
		{"InvalidArguments", testInvalidArguments},
		{"SetNX", testSetNX},
		{"CompareAndSwap", testCompareAndSwap},
		{"GetDel", testGetDel},
		{"Incr", testIncr},
		{"List", testList},
		{"TTL", testTTL},
		{"ConcurrentGetDelSingleUse", testConcurrentGetDel},
		{"ConcurrentSetNX", testConcurrentSetNX},
		{"ConcurrentCompareAndSwap", testConcurrentCAS},
		{"ConcurrentIncr", testConcurrentIncr},
		{"PublishSubscribe", testPublishSubscribe},
		{"SubscribeEndsWithContext", testSubscribeEnds},
		{"CanceledContext", testCanceledContext},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := h.Open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, &subject{Store: s, h: h, ctx: t.Context()})
		})
	}
}

// subject is the store under test with the suite's conveniences.
type subject struct {
	store.Store
	h   Harness
	ctx context.Context
}

// advance lets d pass for the store.
func (s *subject) advance(d time.Duration) {
	if s.h.Advance != nil {
		s.h.Advance(s.Store, d)
		return
	}
	time.Sleep(d)
}

// expire lets every key written with the suite's ttl expire.
func (s *subject) expire() { s.advance(ttl + ttl/2) }

func (s *subject) mustSet(t *testing.T, key, value string, ttl time.Duration) {
	t.Helper()
	if err := s.Set(s.ctx, key, []byte(value), ttl); err != nil {
		t.Fatalf("Set(%q) = %v", key, err)
	}
}

// wantValue checks that key holds want.
func (s *subject) wantValue(t *testing.T, key, want string) {
	t.Helper()
	got, err := s.Get(s.ctx, key)
	if err != nil {
		t.Fatalf("Get(%q) = %v, want %q", key, err, want)
	}
	if string(got) != want {
		t.Errorf("Get(%q) = %q, want %q", key, got, want)
	}
}

// wantAbsent checks that Get(key) reports ErrNotFound.
func (s *subject) wantAbsent(t *testing.T, key string) {
	t.Helper()
	if got, err := s.Get(s.ctx, key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(%q) = %q, %v; want ErrNotFound", key, got, err)
	}
}

func testGetSetDelete(t *testing.T, s *subject) {
	s.wantAbsent(t, "k")
	s.mustSet(t, "k", "v1", 0)
	s.wantValue(t, "k", "v1")
	s.mustSet(t, "k", "v2", 0)
	s.wantValue(t, "k", "v2")

	// Binary values, and an empty value, round-trip.
	bin := string([]byte{0, 1, 0xff, '\n', 0})
	s.mustSet(t, "bin", bin, 0)
	s.wantValue(t, "bin", bin)
	s.mustSet(t, "empty", "", 0)
	s.wantValue(t, "empty", "")

	// Neither the caller's slice nor the returned one aliases the store.
	in := []byte("abc")
	if err := s.Set(s.ctx, "alias", in, 0); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	out, err := s.Get(s.ctx, "alias")
	if err != nil {
		t.Fatal(err)
	}
	out[1] = 'Y'
	s.wantValue(t, "alias", "abc")

	if err := s.Delete(s.ctx, "k"); err != nil {
		t.Fatalf("Delete(k) = %v", err)
	}
	s.wantAbsent(t, "k")
	if err := s.Delete(s.ctx, "never-set"); err != nil {
		t.Errorf("Delete(absent) = %v, want nil", err)
	}
}

func testGetMany(t *testing.T, s *subject) {
	s.mustSet(t, "a", "va", 0)
	s.mustSet(t, "empty", "", 0)
	s.mustSet(t, "short", "gone", ttl)
	s.mustSet(t, "long", "vl", time.Hour)
	s.expire()

	got, err := s.GetMany(s.ctx, "long", "absent", "a", "empty", "short", "a")
	if err != nil {
		t.Fatalf("GetMany = %v", err)
	}
	want := [][]byte{[]byte("vl"), nil, []byte("va"), {}, nil, []byte("va")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetMany mismatch (-want +got):\n%s", diff)
	}
	// Absent is nil, a present empty value is not.
	if got[1] != nil || got[3] == nil || got[4] != nil {
		t.Errorf("GetMany: absent %v, empty %v, expired %v; want nil, non-nil, nil", got[1] == nil, got[3] == nil, got[4] == nil)
	}
	// The returned slices belong to the caller.
	got[2][0] = 'X'
	s.wantValue(t, "a", "va")

	// More keys than one pipeline carries come back whole and in order.
	many := make([]string, 1203)
	for i := range many {
		many[i] = fmt.Sprintf("m/%d", i)
		if i%7 == 0 {
			s.mustSet(t, many[i], many[i], 0)
		}
	}
	got, err = s.GetMany(s.ctx, many...)
	if err != nil || len(got) != len(many) {
		t.Fatalf("GetMany of %d keys = %d values, %v", len(many), len(got), err)
	}
	for i, v := range got {
		if want := i%7 == 0; (v != nil) != want || (want && string(v) != many[i]) {
			t.Fatalf("GetMany of %d keys: value %d = %q, want present %v", len(many), i, v, want)
		}
	}

	if got, err := s.GetMany(s.ctx); err != nil || len(got) != 0 {
		t.Errorf("GetMany() = %q, %v; want nothing, nil", got, err)
	}
}

func testSetMany(t *testing.T, s *subject) {
	s.mustSet(t, "old", "before", 0)
	s.mustSet(t, "was-short", "v", ttl)
	in := []store.KV{{Key: "old", Value: []byte("after")}, {Key: "new", Value: []byte("n")},
		{Key: "empty", Value: nil}, {Key: "was-short", Value: []byte("w")}}
	if err := s.SetMany(s.ctx, in, 0); err != nil {
		t.Fatalf("SetMany = %v", err)
	}
	in[1].Value[0] = 'X' // the store keeps its own copy
	if err := s.SetMany(s.ctx, []store.KV{{Key: "brief", Value: []byte("b")}}, ttl); err != nil {
		t.Fatalf("SetMany with ttl = %v", err)
	}
	s.wantValue(t, "old", "after")
	s.wantValue(t, "new", "n")
	s.wantValue(t, "empty", "")
	s.wantValue(t, "brief", "b")
	s.expire()
	s.wantAbsent(t, "brief")
	s.wantValue(t, "was-short", "w") // a Set without ttl drops the old expiry
	if err := s.SetMany(s.ctx, nil, 0); err != nil {
		t.Errorf("SetMany(nothing) = %v", err)
	}

	// More pairs than one pipeline carries are all stored.
	many := make([]store.KV, 1203)
	keys := make([]string, len(many))
	for i := range many {
		keys[i] = fmt.Sprintf("sm/%d", i)
		many[i] = store.KV{Key: keys[i], Value: []byte(keys[i])}
	}
	if err := s.SetMany(s.ctx, many, 0); err != nil {
		t.Fatalf("SetMany of %d = %v", len(many), err)
	}
	got, err := s.GetMany(s.ctx, keys...)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if string(v) != keys[i] {
			t.Fatalf("after SetMany of %d: %s = %q", len(many), keys[i], v)
		}
	}
}

func testInvalidArguments(t *testing.T, s *subject) {
	ctx := s.ctx
	calls := map[string]func() error{
		"Get empty key":     func() error { _, err := s.Get(ctx, ""); return err },
		"GetMany empty key": func() error { _, err := s.GetMany(ctx, "k", ""); return err },
		"SetMany empty key": func() error { return s.SetMany(ctx, []store.KV{{Key: "k"}, {Key: ""}}, 0) },
		"SetMany negative ttl": func() error {
			return s.SetMany(ctx, []store.KV{{Key: "k", Value: []byte("v")}}, -time.Second)
		},
		"SetMany() negative ttl": func() error { return s.SetMany(ctx, nil, -time.Second) },
		"Set empty key":          func() error { return s.Set(ctx, "", []byte("v"), 0) },
		"SetNX empty key":        func() error { _, err := s.SetNX(ctx, "", []byte("v"), 0); return err },
		"CAS empty key":          func() error { _, err := s.CompareAndSwap(ctx, "", nil, []byte("v"), 0); return err },
		"GetDel empty key":       func() error { _, err := s.GetDel(ctx, ""); return err },
		"Delete empty key":       func() error { return s.Delete(ctx, "") },
		"Incr empty key":         func() error { _, err := s.Incr(ctx, "", 0); return err },
		"Set negative ttl":       func() error { return s.Set(ctx, "k", []byte("v"), -time.Second) },
		"SetNX negative ttl":     func() error { _, err := s.SetNX(ctx, "k", []byte("v"), -time.Second); return err },
		"CAS negative ttl":       func() error { _, err := s.CompareAndSwap(ctx, "k", nil, []byte("v"), -time.Second); return err },
		"Incr negative ttl":      func() error { _, err := s.Incr(ctx, "k", -time.Second); return err },
		"Incr of a non-count":    func() error { s.mustSet(t, "word", "abc", 0); _, err := s.Incr(ctx, "word", 0); return err },
	}
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s: err = nil, want an error", name)
		}
	}
	s.wantAbsent(t, "k")
	s.wantValue(t, "word", "abc")
}

func testSetNX(t *testing.T, s *subject) {
	ok, err := s.SetNX(s.ctx, "k", []byte("first"), 0)
	if err != nil || !ok {
		t.Fatalf("SetNX(absent) = %v, %v; want true, nil", ok, err)
	}
	ok, err = s.SetNX(s.ctx, "k", []byte("second"), 0)
	if err != nil || ok {
		t.Fatalf("SetNX(present) = %v, %v; want false, nil", ok, err)
	}
	s.wantValue(t, "k", "first")

	if ok, err := s.SetNX(s.ctx, "short", []byte("a"), ttl); err != nil || !ok {
		t.Fatalf("SetNX(short) = %v, %v; want true, nil", ok, err)
	}
	s.expire()
	if ok, err := s.SetNX(s.ctx, "short", []byte("b"), 0); err != nil || !ok {
		t.Fatalf("SetNX(expired) = %v, %v; want true, nil", ok, err)
	}
	s.wantValue(t, "short", "b")
}

func testCompareAndSwap(t *testing.T, s *subject) {
	tests := []struct {
		name    string
		initial *string // nil: absent
		old     []byte
		want    bool
	}{
		{"nil old on absent", nil, nil, true},
		{"nil old on present", ptr("cur"), nil, false},
		{"matching old", ptr("cur"), []byte("cur"), true},
		{"different old", ptr("cur"), []byte("other"), false},
		{"old on absent", nil, []byte("cur"), false},
		{"empty old on empty value", ptr(""), []byte{}, true},
		{"empty old on absent", nil, []byte{}, false},
		{"empty old on non-empty", ptr("cur"), []byte{}, false},
	}
	for i, tc := range tests {
		key := "cas/" + string(rune('a'+i))
		if tc.initial != nil {
			s.mustSet(t, key, *tc.initial, 0)
		}
		got, err := s.CompareAndSwap(s.ctx, key, tc.old, []byte("new"), 0)
		if err != nil {
			t.Fatalf("%s: CompareAndSwap = %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: CompareAndSwap = %v, want %v", tc.name, got, tc.want)
		}
		switch {
		case tc.want:
			s.wantValue(t, key, "new")
		case tc.initial != nil:
			s.wantValue(t, key, *tc.initial)
		default:
			s.wantAbsent(t, key)
		}
	}

	// The new value carries ttl, and an expired key counts as absent.
	if ok, err := s.CompareAndSwap(s.ctx, "cas/ttl", nil, []byte("v"), ttl); err != nil || !ok {
		t.Fatalf("CompareAndSwap(ttl) = %v, %v", ok, err)
	}
	s.expire()
	s.wantAbsent(t, "cas/ttl")
	if ok, err := s.CompareAndSwap(s.ctx, "cas/ttl", []byte("v"), []byte("w"), 0); err != nil || ok {
		t.Errorf("CompareAndSwap(old on expired) = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s.CompareAndSwap(s.ctx, "cas/ttl", nil, []byte("w"), 0); err != nil || !ok {
		t.Errorf("CompareAndSwap(nil old on expired) = %v, %v; want true, nil", ok, err)
	}
}

func ptr(s string) *string { return &s }

func testGetDel(t *testing.T, s *subject) {
	s.mustSet(t, "code", "secret", 0)
	got, err := s.GetDel(s.ctx, "code")
	if err != nil || string(got) != "secret" {
		t.Fatalf("GetDel = %q, %v; want secret", got, err)
	}
	if got, err := s.GetDel(s.ctx, "code"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second GetDel = %q, %v; want ErrNotFound", got, err)
	}
	s.wantAbsent(t, "code")

	s.mustSet(t, "short", "x", ttl)
	s.expire()
	if got, err := s.GetDel(s.ctx, "short"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDel(expired) = %q, %v; want ErrNotFound", got, err)
	}
}

func testIncr(t *testing.T, s *subject) {
	for want := int64(1); want <= 3; want++ {
		if got, err := s.Incr(s.ctx, "n", 0); err != nil || got != want {
			t.Fatalf("Incr = %d, %v; want %d", got, err, want)
		}
	}
	s.wantValue(t, "n", "3")

	// The ttl applies when Incr creates the counter; later increments keep
	// the original expiry rather than extending it.
	if got, err := s.Incr(s.ctx, "win", ttl); err != nil || got != 1 {
		t.Fatalf("Incr(win) = %d, %v; want 1", got, err)
	}
	s.advance(ttl / 2)
	if got, err := s.Incr(s.ctx, "win", ttl); err != nil || got != 2 {
		t.Fatalf("Incr(win) = %d, %v; want 2", got, err)
	}
	s.advance(ttl/2 + ttl/4)
	s.wantAbsent(t, "win")
	if got, err := s.Incr(s.ctx, "win", ttl); err != nil || got != 1 {
		t.Errorf("Incr(expired win) = %d, %v; want 1", got, err)
	}
}

func testList(t *testing.T, s *subject) {
	for _, k := range []string{"a/2", "a/10", "a/1", "b/1", "a", "ab/1"} {
		s.mustSet(t, k, "v"+k, 0)
	}
	s.mustSet(t, "a/short", "gone", ttl)
	s.expire()

	tests := []struct {
		prefix string
		want   []store.KV
	}{
		{"a/", []store.KV{{Key: "a/1", Value: []byte("va/1")}, {Key: "a/10", Value: []byte("va/10")}, {Key: "a/2", Value: []byte("va/2")}}},
		{"b/", []store.KV{{Key: "b/1", Value: []byte("vb/1")}}},
		{"c/", nil},
		{"", []store.KV{
			{Key: "a", Value: []byte("va")}, {Key: "a/1", Value: []byte("va/1")}, {Key: "a/10", Value: []byte("va/10")},
			{Key: "a/2", Value: []byte("va/2")}, {Key: "ab/1", Value: []byte("vab/1")}, {Key: "b/1", Value: []byte("vb/1")},
		}},
	}
	for _, tc := range tests {
		got, err := s.List(s.ctx, tc.prefix)
		if err != nil {
			t.Fatalf("List(%q) = %v", tc.prefix, err)
		}
		if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("List(%q) mismatch (-want +got):\n%s", tc.prefix, diff)
		}
	}
}

func testTTL(t *testing.T, s *subject) {
	s.mustSet(t, "short", "v", ttl)
	s.mustSet(t, "long", "v", time.Hour)
	s.mustSet(t, "forever", "v", 0)
	s.mustSet(t, "renewed", "v", ttl)
	s.mustSet(t, "renewed", "v2", 0) // a Set without ttl drops the old expiry
	s.mustSet(t, "shortened", "v", 0)
	s.mustSet(t, "shortened", "v2", ttl) // and a Set with one adds it
	s.wantValue(t, "short", "v")
	s.expire()
	s.wantAbsent(t, "short")
	s.wantAbsent(t, "shortened")
	s.wantValue(t, "long", "v")
	s.wantValue(t, "forever", "v")
	s.wantValue(t, "renewed", "v2")
	kvs, err := s.List(s.ctx, "s")
	if err != nil || len(kvs) != 0 {
		t.Errorf("List(s) = %v, %v; want no expired keys", kvs, err)
	}
}
