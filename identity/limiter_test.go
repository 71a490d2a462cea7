package identity

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	e := newEnv(t)
	l, err := NewLimiter(e.d)
	if err != nil {
		t.Fatal(err)
	}
	l.PerSource = Limit{N: 5, Window: time.Minute}
	l.PerUser = Limit{N: 3, Window: time.Minute}
	ctx := e.ctx()
	e.clk.Advance(10 * time.Second) // 09:00:10, 50s left in the window

	// Per user: 3 attempts from different sources, the 4th is refused.
	for i := 0; i < 3; i++ {
		if _, err := l.Allow(ctx, "login", "198.51.100.1", "ann@example.com"); err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	wait, err := l.Allow(ctx, "login", "198.51.100.2", "ANN@example.com")
	if !errors.Is(err, ErrRateLimited) || wait != 50*time.Second {
		t.Errorf("4th attempt by user = %v, %v; want ErrRateLimited, 50s", wait, err)
	}
	// Another endpoint has its own counters.
	if _, err := l.Allow(ctx, "assert", "198.51.100.3", "ann@example.com"); err != nil {
		t.Errorf("other endpoint limited: %v", err)
	}

	// Per source: IPv6 addresses in one /64 share a bucket.
	for i := 0; i < 5; i++ {
		if _, err := l.Allow(ctx, "approve", "[2001:db8::1]:4000", ""); err != nil {
			t.Fatalf("v6 attempt %d: %v", i+1, err)
		}
	}
	if _, err := l.Allow(ctx, "approve", "[2001:db8::ffff]:4001", ""); !errors.Is(err, ErrRateLimited) {
		t.Errorf("6th attempt from the same /64 = %v, want ErrRateLimited", err)
	}
	if _, err := l.Allow(ctx, "approve", "[2001:db8:0:1::1]:4001", ""); err != nil {
		t.Errorf("another /64 limited: %v", err)
	}
	if n := len(e.audit.find(EventRateLimit, "deny")); n != 2 {
		t.Errorf("%d rate-limit events audited, want 2 (first refusal per key and window)", n)
	}

	// The next window starts fresh.
	e.clk.Advance(time.Minute)
	if _, err := l.Allow(ctx, "login", "198.51.100.2", "ann@example.com"); err != nil {
		t.Errorf("next window: %v", err)
	}
}

func TestSourceKey(t *testing.T) {
	cases := map[string]string{
		"192.0.2.1:443":          "192.0.2.1",
		"192.0.2.1":              "192.0.2.1",
		"[::ffff:192.0.2.1]:80":  "192.0.2.1",
		"[2001:db8:1:2:3::4]:22": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:22":      "fe80::/64",
		"garbage":                "invalid",
		"":                       "invalid",
	}
	for in, want := range cases {
		if got := SourceKey(in); got != want {
			t.Errorf("SourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// countStore counts Incr calls per key, as the store does.
type countStore map[string]int64

func (c countStore) Incr(_ context.Context, key string, _ time.Duration) (int64, error) {
	c[key]++
	return c[key], nil
}

func TestLimitCount(t *testing.T) {
	lim := Limit{N: 2, Window: time.Minute}
	c := countStore{}
	start := time.Date(2030, 1, 1, 9, 0, 15, 0, time.UTC)
	for i, want := range []int64{1, 2, 3} {
		n, left, err := lim.Count(context.Background(), c, start, "k")
		if err != nil || n != want || left != 45*time.Second {
			t.Errorf("count %d = %d, %v, %v; want %d, 45s", i+1, n, left, err, want)
		}
	}
	// The next window counts from one; other keys are apart.
	if n, _, _ := lim.Count(context.Background(), c, start.Add(45*time.Second), "k"); n != 1 {
		t.Errorf("next window = %d, want 1", n)
	}
	if n, _, _ := lim.Count(context.Background(), c, start, "other"); n != 1 {
		t.Errorf("other key = %d, want 1", n)
	}
	if got := (Limit{}).OrDefault(lim); got != lim {
		t.Errorf("zero Limit OrDefault = %v", got)
	}
}
