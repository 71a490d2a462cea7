package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
)

// upTestLogger sends logs to t.Log.
func upTestLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(upTestWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type upTestWriter struct{ t testing.TB }

func (w upTestWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// upBolt opens an embedded store in a temporary directory.
func upBolt(t testing.TB) *store.Bolt {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// upClock is a settable clock.
type upClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *upClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *upClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func upSigner(t testing.TB, st keyStore, now func() time.Time) *AssertionSigner {
	t.Helper()
	a, err := NewAssertionSigner(context.Background(), AssertionConfig{
		Store: st, Issuer: "https://gate.example.test/", Logger: upTestLogger(t), Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// upFetchJWKS fetches and decodes the JWKS a handler serves.
func upFetchJWKS(t testing.TB, h http.Handler) (jose.JSONWebKeySet, http.Header, []byte) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET jwks: %s", res.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("decode jwks: %v", err)
	}
	return set, res.Header, body
}

// upVerify verifies token against set the way an upstream would.
func upVerify(t testing.TB, token string, set jose.JSONWebKeySet, aud string, at time.Time) (assertionClaims, error) {
	t.Helper()
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return assertionClaims{}, err
	}
	if len(tok.Headers) != 1 {
		return assertionClaims{}, errors.New("want one signature")
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		return assertionClaims{}, errors.New("kid not in jwks")
	}
	var c assertionClaims
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		return assertionClaims{}, err
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: "https://gate.example.test", AnyAudience: jwt.Audience{aud}, Time: at}, 0); err != nil {
		return assertionClaims{}, err
	}
	return c, nil
}

func TestAssertionVerifiesAgainstJWKS(t *testing.T) {
	clock := &upClock{t: time.Now().Truncate(time.Second)}
	a := upSigner(t, upBolt(t), clock.Now)
	mfa := clock.Now().Add(-3 * time.Minute)
	who := authz.Subject{Email: "alice@example.com", Groups: []string{"eng", "sre"}, MFAAt: mfa}
	token, groups, err := a.Assertion(who, "grafana")
	if err != nil {
		t.Fatal(err)
	}
	if groups != "eng,sre" {
		t.Errorf("groups header = %q, want eng,sre", groups)
	}
	set, hdr, body := upFetchJWKS(t, a.JWKS())
	if got := hdr.Get("Cache-Control"); got != "public, max-age=300" {
		t.Errorf("Cache-Control = %q", got)
	}
	if strings.Contains(string(body), `"d"`) {
		t.Errorf("JWKS contains private key material: %s", body)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || k.Algorithm != "ES256" || k.Use != "sig" {
			t.Errorf("JWKS key %+v: want public ES256 sig key", k)
		}
	}
	c, err := upVerify(t, token, set, "grafana", clock.Now())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	got := map[string]any{"sub": c.Subject, "email": c.Email, "groups": c.Groups, "mfa_at": c.MFAAt,
		"lifetime": c.Expiry.Time().Sub(c.IssuedAt.Time()), "nbf": c.NotBefore.Time().Equal(c.IssuedAt.Time()), "jti": c.ID != ""}
	want := map[string]any{"sub": "alice@example.com", "email": "alice@example.com", "groups": []string{"eng", "sre"}, "mfa_at": mfa.Unix(),
		"lifetime": DefaultAssertionLifetime, "nbf": true, "jti": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claims mismatch (-want +got):\n%s", diff)
	}
	// Wrong audience, expired, or tampered: refused.
	if _, err := upVerify(t, token, set, "other-route", clock.Now()); err == nil {
		t.Error("token accepted for another audience")
	}
	if _, err := upVerify(t, token, set, "grafana", clock.Now().Add(DefaultAssertionLifetime+time.Second)); err == nil {
		t.Error("token accepted after expiry")
	}
	parts := strings.Split(token, ".")
	forged := parts[0] + "." + strings.TrimRight(parts[1], "A") + "B." + parts[2]
	if _, err := upVerify(t, forged, set, "grafana", clock.Now()); err == nil {
		t.Error("tampered token accepted")
	}
}

func TestAssertionCache(t *testing.T) {
	clock := &upClock{t: time.Now()}
	a := upSigner(t, upBolt(t), clock.Now)
	who := authz.Subject{Email: "a@example.com", Groups: []string{"g"}, MFAAt: clock.Now()}
	first, _, _ := a.Assertion(who, "app")
	tests := []struct {
		name    string
		advance time.Duration
		who     authz.Subject
		aud     string
		same    bool
	}{
		{"same identity and route reused", 10 * time.Second, who, "app", true},
		{"other route", 0, who, "other", false},
		{"other groups", 0, authz.Subject{Email: who.Email, Groups: []string{"g", "h"}, MFAAt: who.MFAAt}, "app", false},
		{"other mfa time", 0, authz.Subject{Email: who.Email, Groups: who.Groups, MFAAt: who.MFAAt.Add(time.Second)}, "app", false},
		{"other email", 0, authz.Subject{Email: "b@example.com", Groups: who.Groups, MFAAt: who.MFAAt}, "app", false},
		{"after a quarter of the lifetime", DefaultAssertionLifetime / 4, who, "app", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Advance(tt.advance)
			got, _, err := a.Assertion(tt.who, tt.aud)
			if err != nil {
				t.Fatal(err)
			}
			if (got == first) != tt.same {
				t.Errorf("Assertion reused = %v, want %v", got == first, tt.same)
			}
		})
	}
}

func TestAssertionKeysSharedAndRotated(t *testing.T) {
	st := upBolt(t)
	clock := &upClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := upSigner(t, st, clock.Now)
	b := upSigner(t, st, clock.Now) // a second replica
	kids := func(s *AssertionSigner) []string {
		set, _, _ := upFetchJWKS(t, s.JWKS())
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.KeyID)
		}
		return out
	}
	first := a.ring.Load().signKID
	if got := b.ring.Load().signKID; got != first {
		t.Fatalf("replicas sign with different keys: %s and %s", first, got)
	}

	// 23h: the next key is published but not yet used.
	clock.Advance(23 * time.Hour)
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := a.ring.Load().signKID; got != first {
		t.Errorf("signing with a key published less than an hour ago")
	}
	ks := kids(a)
	if len(ks) != 2 || ks[0] != first {
		t.Fatalf("JWKS after 23h = %v, want [old new]", ks)
	}
	second := ks[1]
	// The other replica picks the new key up on its next lazy refresh.
	clock.Advance(time.Minute)
	if diff := cmp.Diff(ks, kids(b)); diff != "" {
		t.Errorf("replica JWKS differs (-a +b):\n%s", diff)
	}

	// 24h+: both replicas sign with the new key; the old one is still published.
	clock.Advance(time.Hour)
	for _, s := range []*AssertionSigner{a, b} {
		tok, _, err := s.Assertion(authz.Subject{Email: "x@example.com", MFAAt: clock.Now()}, "r")
		if err != nil {
			t.Fatal(err)
		}
		parsed, _ := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
		if kid := parsed.Headers[0].KeyID; kid != second {
			t.Errorf("signed with %s, want %s", kid, second)
		}
	}
	if got := kids(a); len(got) != 2 {
		t.Errorf("JWKS after rotation = %v, want old and new", got)
	}

	// Keep rotating daily: the first key is gone once superseded for 48h.
	for range 3 {
		clock.Advance(24 * time.Hour)
		if err := a.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	got := kids(a)
	for _, k := range got {
		if k == first {
			t.Errorf("first key still published after %v: %v", clock.Now().Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), got)
		}
	}
	if len(got) < 3 || len(got) > 4 {
		t.Errorf("JWKS holds %d keys, want 3 or 4 (48h of superseded keys plus the current and next)", len(got))
	}
}

// upFlakyStore is a keyStore that can fail or hold arbitrary bytes.
type upFlakyStore struct {
	mu   sync.Mutex
	val  []byte
	fail bool
}

func (s *upFlakyStore) Get(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return nil, errors.New("store down")
	}
	if s.val == nil {
		return nil, store.ErrNotFound
	}
	return s.val, nil
}

func (s *upFlakyStore) CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return false, errors.New("store down")
	}
	if string(old) != string(s.val) || (old == nil) != (s.val == nil) {
		return false, nil
	}
	s.val = new
	return true, nil
}

func TestAssertionSignerFailures(t *testing.T) {
	t.Run("corrupt ring is refused and kept", func(t *testing.T) {
		st := &upFlakyStore{val: []byte("{not json")}
		_, err := NewAssertionSigner(context.Background(), AssertionConfig{Store: st, Issuer: "https://g"})
		if err == nil {
			t.Fatal("NewAssertionSigner accepted a corrupt ring")
		}
		if string(st.val) != "{not json" {
			t.Errorf("corrupt ring overwritten")
		}
	})
	t.Run("key ID must match the key", func(t *testing.T) {
		st := &upFlakyStore{}
		upSigner(t, st, time.Now)
		st.val = []byte(strings.Replace(string(st.val), `"kid":"`, `"kid":"x`, 1))
		if _, err := NewAssertionSigner(context.Background(), AssertionConfig{Store: st, Issuer: "https://g"}); err == nil {
			t.Fatal("accepted a key whose kid is not its thumbprint")
		}
	})
	t.Run("store down at start", func(t *testing.T) {
		if _, err := NewAssertionSigner(context.Background(), AssertionConfig{Store: &upFlakyStore{fail: true}, Issuer: "https://g"}); err == nil {
			t.Fatal("started without keys")
		}
	})
	t.Run("store down later keeps signing", func(t *testing.T) {
		st := &upFlakyStore{}
		clock := &upClock{t: time.Now()}
		a := upSigner(t, st, clock.Now)
		st.mu.Lock()
		st.fail = true
		st.mu.Unlock()
		clock.Advance(2 * time.Minute)
		if _, _, err := a.Assertion(authz.Subject{Email: "a@b.c"}, "r"); err != nil {
			t.Fatalf("Assertion with store down: %v", err)
		}
		if err := a.Refresh(context.Background()); err == nil {
			t.Error("Refresh with store down: no error")
		}
	})
	t.Run("config", func(t *testing.T) {
		for _, cfg := range []AssertionConfig{
			{Issuer: "https://g"},
			{Store: &upFlakyStore{}},
			{Store: &upFlakyStore{}, Issuer: "https://g", Lifetime: 6 * time.Minute},
			{Store: &upFlakyStore{}, Issuer: "https://g", Lifetime: time.Second},
		} {
			if _, err := NewAssertionSigner(context.Background(), cfg); err == nil {
				t.Errorf("NewAssertionSigner(%+v) accepted", cfg)
			}
		}
	})
}

func TestJWKSMethods(t *testing.T) {
	a := upSigner(t, &upFlakyStore{}, time.Now)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		rec := httptest.NewRecorder()
		a.JWKS().ServeHTTP(rec, httptest.NewRequest(m, JWKSPath, nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s = %d, want 405", m, JWKSPath, rec.Code)
		}
	}
}

func BenchmarkAssertionCached(b *testing.B) {
	a := upSigner(b, &upFlakyStore{}, time.Now)
	who := authz.Subject{Email: "a@example.com", Groups: []string{"eng", "sre"}, MFAAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := a.Assertion(who, "grafana"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAssertionSign(b *testing.B) {
	a := upSigner(b, &upFlakyStore{}, time.Now)
	ring := a.ring.Load()
	who := authz.Subject{Email: "a@example.com", Groups: []string{"eng", "sre"}, MFAAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.sign(ring, who, "grafana", 1, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
