package identity

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func newCodec(t testing.TB, e *env) *Codec {
	t.Helper()
	c, err := NewCodec(e.ctx(), e.d, 0)
	if err != nil {
		t.Fatalf("NewCodec: %v", err)
	}
	return c
}

func TestCookieRoundTrip(t *testing.T) {
	e := newEnv(t)
	c := newCodec(t, e)
	v, err := c.Seal("__Host-gh", "grafana.example.com", "session-id-1")
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if len(v) > MaxCookieLen || strings.Contains(v, "session-id-1") {
		t.Fatalf("Seal = %q: too long or leaks the ID", v)
	}
	got, err := c.Open("__Host-gh", "grafana.example.com", v)
	if err != nil || got != "session-id-1" {
		t.Fatalf("Open = %q, %v; want session-id-1, nil", got, err)
	}
	// Two seals of the same ID differ (random nonce).
	v2, _ := c.Seal("__Host-gh", "grafana.example.com", "session-id-1")
	if v2 == v {
		t.Errorf("two Seals gave the same value")
	}
}

func TestCookieRefused(t *testing.T) {
	e := newEnv(t)
	c := newCodec(t, e)
	good, err := c.Seal("gh", "app.example.com", "sid")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	cases := []struct {
		name, cookie, host, value string
	}{
		{"other host", "gh", "evil.example.com", good},
		{"other cookie name", "gh2", "app.example.com", good},
		{"empty", "gh", "app.example.com", ""},
		{"garbage", "gh", "app.example.com", "not-a-cookie"},
		{"not base64", "gh", "app.example.com", strings.Repeat("*", 80)},
		{"too long", "gh", "app.example.com", strings.Repeat("A", MaxCookieLen+1)},
		{"truncated", "gh", "app.example.com", good[:len(good)-4]},
		{"tampered version", "gh", "app.example.com", flip(0)},
		{"tampered key id", "gh", "app.example.com", flip(2)},
		{"tampered nonce", "gh", "app.example.com", flip(8)},
		{"tampered body", "gh", "app.example.com", flip(len(raw) - 20)},
		{"tampered tag", "gh", "app.example.com", flip(len(raw) - 1)},
		{"forged", "gh", "app.example.com", base64.RawURLEncoding.EncodeToString(append([]byte{1, 0, 0, 0, 1}, make([]byte, 60)...))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := c.Open(tc.cookie, tc.host, tc.value); err == nil {
				t.Errorf("Open(%q, %q, %q) = %q, nil; want error", tc.cookie, tc.host, tc.value, got)
			}
		})
	}
}

func TestCookieExpiry(t *testing.T) {
	e := newEnv(t)
	c, err := NewCodec(e.ctx(), e.d, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := c.Seal("gh", "h", "sid")
	e.clk.Advance(59 * time.Minute)
	if _, err := c.Open("gh", "h", v); err != nil {
		t.Fatalf("Open after 59m: %v", err)
	}
	e.clk.Advance(2 * time.Minute)
	if _, err := c.Open("gh", "h", v); err == nil {
		t.Fatalf("Open after 61m succeeded; want expired")
	}
}

func TestCookieKeyRotationSharedAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	a := newCodec(t, e)
	b := newCodec(t, e) // a second replica on the same store
	v1, _ := a.Seal("gh", "h", "sid1")
	if got, err := b.Open("gh", "h", v1); err != nil || got != "sid1" {
		t.Fatalf("replica b Open = %q, %v", got, err)
	}
	// A day later a rotates; b picks the new key up when it sees its ID.
	e.clk.Advance(CookieKeyRotation + time.Minute)
	v2, err := a.Seal("gh", "h", "sid2")
	if err != nil {
		t.Fatal(err)
	}
	if v1[:8] == v2[:8] {
		t.Errorf("no rotation: both cookies carry the same key ID")
	}
	if got, err := b.Open("gh", "h", v2); err != nil || got != "sid2" {
		t.Fatalf("replica b Open after rotation = %q, %v", got, err)
	}
	_, ring := storedRing(t, e, e.d.Secrets)
	if len(ring) != 2 {
		t.Errorf("ring has %d keys, want 2", len(ring))
	}
	// Old cookies expire with maxAge anyway; old keys are pruned later.
	e.clk.Advance(3 * CookieKeyRotation)
	if _, err := a.Seal("gh", "h", "sid3"); err != nil {
		t.Fatal(err)
	}
	_, ring = storedRing(t, e, e.d.Secrets)
	// The first key is gone; the second sealed until just now, so its
	// cookies may live another maxAge and it stays next to the new one.
	if len(ring) != 2 || ring[0].ID == binaryKeyID(t, v1) {
		t.Errorf("after 4 days ring has %d keys (first %d), want 2 without the first key", len(ring), ring[0].ID)
	}
	if _, err := b.Open("gh", "h", v1); err == nil {
		t.Errorf("cookie sealed with a pruned key still opens")
	}
}

func binaryKeyID(t testing.TB, v string) uint32 {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) < 5 {
		t.Fatalf("bad cookie %q", v)
	}
	return uint32(b[1])<<24 | uint32(b[2])<<16 | uint32(b[3])<<8 | uint32(b[4])
}

func FuzzOpenCookie(f *testing.F) {
	e := newEnv(f)
	c := newCodec(f, e)
	good, _ := c.Seal("gh", "app.example.com", "sid")
	f.Add(good)
	f.Add("")
	f.Add("AQ")
	f.Add(strings.Repeat("A", 300))
	f.Add(good[:20] + "x" + good[21:])
	f.Fuzz(func(t *testing.T, v string) {
		id, err := c.Open("gh", "app.example.com", v)
		if err == nil && (v != good || id != "sid") {
			t.Fatalf("Open(%q) = %q, nil; only the sealed value may open", v, id)
		}
	})
}

// countingStore counts Get calls.
type countingStore struct {
	kvStore
	gets int
}

func (c *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	c.gets++
	return c.kvStore.Get(ctx, key)
}

func TestCookieUnknownKeyReloadsRarely(t *testing.T) {
	e := newEnv(t)
	cs := &countingStore{kvStore: e.st}
	d := e.d
	d.Store = cs
	c, err := NewCodec(e.ctx(), d, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := cs.gets
	forged := base64.RawURLEncoding.EncodeToString(append([]byte{1, 9, 9, 9, 9}, make([]byte, 60)...))
	for i := 0; i < 100; i++ {
		if _, err := c.Open("gh", "h", forged); err == nil {
			t.Fatal("forged cookie opened")
		}
	}
	if n := cs.gets - before; n != 1 {
		t.Errorf("100 cookies with an unknown key ID caused %d store reads, want 1", n)
	}
	e.clk.Advance(ringReloadMin)
	c.Open("gh", "h", forged)
	if n := cs.gets - before; n != 2 {
		t.Errorf("after %v: %d store reads, want 2", ringReloadMin, n)
	}
}
