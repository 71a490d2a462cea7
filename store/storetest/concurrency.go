package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
)

// workers is how many goroutines race in the concurrency tests.
const workers = 8

// race runs fn(i) for i in [0, workers) at the same moment and waits.
func race(fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range workers {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// testConcurrentGetDel checks that a single-use code is redeemed once: of
// several goroutines that GetDel the same key, exactly one gets the value.
func testConcurrentGetDel(t *testing.T, s *subject) {
	const keys = 20
	for k := range keys {
		s.mustSet(t, fmt.Sprintf("code/%d", k), fmt.Sprintf("value-%d", k), 0)
	}
	for k := range keys {
		key := fmt.Sprintf("code/%d", k)
		var mu sync.Mutex
		var wins []string
		var errs []error
		race(func(int) {
			v, err := s.GetDel(s.ctx, key)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins = append(wins, string(v))
			case !errors.Is(err, store.ErrNotFound):
				errs = append(errs, err)
			}
		})
		if len(errs) > 0 {
			t.Fatalf("GetDel(%s): unexpected errors %v", key, errs)
		}
		if want := fmt.Sprintf("value-%d", k); len(wins) != 1 || wins[0] != want {
			t.Fatalf("GetDel(%s) winners = %q, want exactly [%q]", key, wins, want)
		}
	}
}

func testConcurrentSetNX(t *testing.T, s *subject) {
	var mu sync.Mutex
	var winners []int
	race(func(i int) {
		ok, err := s.SetNX(s.ctx, "lock", []byte(strconv.Itoa(i)), 0)
		if err != nil {
			t.Errorf("SetNX = %v", err)
		}
		if ok {
			mu.Lock()
			winners = append(winners, i)
			mu.Unlock()
		}
	})
	if len(winners) != 1 {
		t.Fatalf("SetNX winners = %v, want exactly one", winners)
	}
	s.wantValue(t, "lock", strconv.Itoa(winners[0]))
}

// testConcurrentCAS increments a counter with compare-and-swap retry loops;
// no increment may be lost.
func testConcurrentCAS(t *testing.T, s *subject) {
	const each = 10
	race(func(int) {
		for range each {
			for {
				cur, err := s.Get(s.ctx, "ctr")
				var old []byte // nil: absent
				n := 0
				switch {
				case err == nil:
					old = cur
					n, _ = strconv.Atoi(string(cur))
				case !errors.Is(err, store.ErrNotFound):
					t.Errorf("Get = %v", err)
					return
				}
				ok, err := s.CompareAndSwap(s.ctx, "ctr", old, []byte(strconv.Itoa(n+1)), 0)
				if err != nil {
					t.Errorf("CompareAndSwap = %v", err)
					return
				}
				if ok {
					break
				}
			}
		}
	})
	s.wantValue(t, "ctr", strconv.Itoa(workers*each))
}

func testConcurrentIncr(t *testing.T, s *subject) {
	const each = 20
	var mu sync.Mutex
	seen := make(map[int64]bool)
	race(func(int) {
		for range each {
			n, err := s.Incr(s.ctx, "hits", time.Hour)
			if err != nil {
				t.Errorf("Incr = %v", err)
				return
			}
			mu.Lock()
			if seen[n] {
				t.Errorf("Incr returned %d twice", n)
			}
			seen[n] = true
			mu.Unlock()
		}
	})
	if len(seen) != workers*each {
		t.Errorf("Incr returned %d distinct values, want %d", len(seen), workers*each)
	}
	s.wantValue(t, "hits", strconv.Itoa(workers*each))
}

// receive reads one message from ch within a deadline.
func receive(t *testing.T, ch <-chan []byte) (string, bool) {
	t.Helper()
	select {
	case m, ok := <-ch:
		return string(m), ok
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return "", false
	}
}

// wantQuiet checks that nothing arrives on ch for a short while.
func wantQuiet(t *testing.T, name string, ch <-chan []byte) {
	t.Helper()
	select {
	case m, ok := <-ch:
		t.Errorf("%s received %q (open %v), want nothing", name, m, ok)
	case <-time.After(100 * time.Millisecond):
	}
}

func testPublishSubscribe(t *testing.T, s *subject) {
	if err := s.Publish(s.ctx, "nobody", []byte("x")); err != nil {
		t.Fatalf("Publish(no subscribers) = %v", err)
	}
	a, err := s.Subscribe(s.ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Subscribe(s.ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Subscribe(s.ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	msgs := []string{"one", "two", "three"}
	for _, m := range msgs {
		if err := s.Publish(s.ctx, "c", []byte(m)); err != nil {
			t.Fatalf("Publish(%q) = %v", m, err)
		}
	}
	for name, ch := range map[string]<-chan []byte{"a": a, "b": b} {
		for _, want := range msgs {
			if got, _ := receive(t, ch); got != want {
				t.Errorf("subscriber %s got %q, want %q", name, got, want)
			}
		}
	}
	wantQuiet(t, "subscriber of d", other)
	if err := s.Publish(s.ctx, "d", []byte("for d")); err != nil {
		t.Fatal(err)
	}
	if got, _ := receive(t, other); got != "for d" {
		t.Errorf("subscriber of d got %q, want %q", got, "for d")
	}
	wantQuiet(t, "subscriber a", a)
}

func testSubscribeEnds(t *testing.T, s *subject) {
	ctx, cancel := context.WithCancel(s.ctx)
	ch, err := s.Subscribe(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				// Publishing to a channel whose subscriber left still works.
				if err := s.Publish(s.ctx, "c", []byte("late")); err != nil {
					t.Errorf("Publish after unsubscribe = %v", err)
				}
				return
			}
		case <-deadline:
			t.Fatal("subscription channel not closed 5s after its context ended")
		}
	}
}

func testCanceledContext(t *testing.T, s *subject) {
	s.mustSet(t, "k", "v", 0)
	ctx, cancel := context.WithCancel(s.ctx)
	cancel()
	calls := map[string]func() error{
		"Get":            func() error { _, err := s.Get(ctx, "k"); return err },
		"GetMany":        func() error { _, err := s.GetMany(ctx, "k"); return err },
		"GetMany()":      func() error { _, err := s.GetMany(ctx); return err },
		"SetMany":        func() error { return s.SetMany(ctx, []store.KV{{Key: "k", Value: []byte("x")}}, 0) },
		"SetMany()":      func() error { return s.SetMany(ctx, nil, 0) },
		"Set":            func() error { return s.Set(ctx, "k", []byte("x"), 0) },
		"SetNX":          func() error { _, err := s.SetNX(ctx, "n", []byte("x"), 0); return err },
		"CompareAndSwap": func() error { _, err := s.CompareAndSwap(ctx, "k", []byte("v"), []byte("x"), 0); return err },
		"GetDel":         func() error { _, err := s.GetDel(ctx, "k"); return err },
		"Delete":         func() error { return s.Delete(ctx, "k") },
		"Incr":           func() error { _, err := s.Incr(ctx, "i", 0); return err },
		"List":           func() error { _, err := s.List(ctx, ""); return err },
		"Publish":        func() error { return s.Publish(ctx, "c", []byte("x")) },
		"Subscribe":      func() error { _, err := s.Subscribe(ctx, "c"); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s(canceled ctx) = %v, want context.Canceled", name, err)
		}
	}
	// Nothing was written.
	s.wantValue(t, "k", "v")
	s.wantAbsent(t, "n")
	s.wantAbsent(t, "i")
}

func testClose(t *testing.T, s *subject) {
	ch, err := s.Subscribe(s.ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("subscription delivered a message after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("subscription channel not closed 5s after Close")
	}
	if _, err := s.Get(s.ctx, "k"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Close = %v, want a closed-store error", err)
	}
	if err := s.Set(s.ctx, "k", []byte("v"), 0); err == nil {
		t.Error("Set after Close = nil, want an error")
	}
	if _, err := s.GetMany(s.ctx, "k"); err == nil {
		t.Error("GetMany after Close = nil, want an error")
	}
	if err := s.SetMany(s.ctx, []store.KV{{Key: "k", Value: []byte("v")}}, 0); err == nil {
		t.Error("SetMany after Close = nil, want an error")
	}
}
