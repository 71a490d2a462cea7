package assertion

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/assertion/assertiontest"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/internal/testlog"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
)

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

func upSigner(t testing.TB, st KeyStore, now func() time.Time) *Signer {
	t.Helper()
	a, err := NewSigner(context.Background(), Config{
		Store: st, Secrets: upKeyring(t), Issuer: assertiontest.Issuer + "/", Logger: testlog.New(t), Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// upKeyring is the master keyring of every upSigner: replicas sharing a
// store share the master key, as in production.
func upKeyring(t testing.TB) *secrets.Keyring { return secretstest.Shared(t) }

// upFetchJWKS fetches and decodes the JWKS a handler serves.
func upFetchJWKS(t testing.TB, h http.Handler) (jose.JSONWebKeySet, http.Header, []byte) {
	t.Helper()
	return assertiontest.FetchJWKS(t, h, JWKSPath)
}

// upVerify verifies token against set the way an upstream would.
func upVerify(t testing.TB, token string, set jose.JSONWebKeySet, aud string, at time.Time) (Claims, error) {
	t.Helper()
	var c Claims
	err := assertiontest.Verify(token, set, aud, at, &c)
	return c, err
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
		"lifetime": DefaultLifetime, "nbf": true, "jti": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claims mismatch (-want +got):\n%s", diff)
	}
	// Wrong audience, expired, or tampered: refused.
	if _, err := upVerify(t, token, set, "other-route", clock.Now()); err == nil {
		t.Error("token accepted for another audience")
	}
	if _, err := upVerify(t, token, set, "grafana", clock.Now().Add(DefaultLifetime+time.Second)); err == nil {
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
		{"after a quarter of the lifetime", DefaultLifetime / 4, who, "app", false},
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
	kids := func(s *Signer) []string {
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
	for _, s := range []*Signer{a, b} {
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

func TestAssertionSignerFailures(t *testing.T) {
	t.Run("corrupt ring is refused and kept", func(t *testing.T) {
		st := &assertiontest.FlakyStore{Val: []byte("{not json")}
		_, err := NewSigner(context.Background(), Config{Store: st, Secrets: secretstest.New(t), Issuer: "https://g"})
		if err == nil {
			t.Fatal("NewSigner accepted a corrupt ring")
		}
		if string(st.Val) != "{not json" {
			t.Errorf("corrupt ring overwritten")
		}
	})
	t.Run("key ID must match the key", func(t *testing.T) {
		st := &assertiontest.FlakyStore{}
		kr := secretstest.New(t)
		if _, err := NewSigner(context.Background(), Config{Store: st, Secrets: kr, Issuer: "https://g"}); err != nil {
			t.Fatal(err)
		}
		plain, err := kr.Open(KeysPurpose, st.Val)
		if err != nil {
			t.Fatal(err)
		}
		if st.Val, err = kr.Seal(KeysPurpose, []byte(strings.Replace(string(plain), `"kid":"`, `"kid":"x`, 1))); err != nil {
			t.Fatal(err)
		}
		if _, err := NewSigner(context.Background(), Config{Store: st, Secrets: kr, Issuer: "https://g"}); err == nil {
			t.Fatal("accepted a key whose kid is not its thumbprint")
		}
	})
	t.Run("store down at start", func(t *testing.T) {
		if _, err := NewSigner(context.Background(), Config{Store: &assertiontest.FlakyStore{Fail: true}, Secrets: secretstest.New(t), Issuer: "https://g"}); err == nil {
			t.Fatal("started without keys")
		}
	})
	t.Run("store down later keeps signing", func(t *testing.T) {
		st := &assertiontest.FlakyStore{}
		clock := &upClock{t: time.Now()}
		a := upSigner(t, st, clock.Now)
		st.SetFail(true)
		clock.Advance(2 * time.Minute)
		if _, _, err := a.Assertion(authz.Subject{Email: "a@b.c"}, "r"); err != nil {
			t.Fatalf("Assertion with store down: %v", err)
		}
		if err := a.Refresh(context.Background()); err == nil {
			t.Error("Refresh with store down: no error")
		}
	})
	t.Run("config", func(t *testing.T) {
		kr := secretstest.New(t)
		for _, cfg := range []Config{
			{Issuer: "https://g", Secrets: kr},
			{Store: &assertiontest.FlakyStore{}, Secrets: kr},
			{Store: &assertiontest.FlakyStore{}, Issuer: "https://g"},
			{Store: &assertiontest.FlakyStore{}, Secrets: kr, Issuer: "https://g", Lifetime: 6 * time.Minute},
			{Store: &assertiontest.FlakyStore{}, Secrets: kr, Issuer: "https://g", Lifetime: time.Second},
		} {
			if _, err := NewSigner(context.Background(), cfg); err == nil {
				t.Errorf("NewSigner(%+v) accepted", cfg)
			}
		}
	})
}

func TestJWKSMethods(t *testing.T) {
	a := upSigner(t, &assertiontest.FlakyStore{}, time.Now)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		rec := httptest.NewRecorder()
		a.JWKS().ServeHTTP(rec, httptest.NewRequest(m, JWKSPath, nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s = %d, want 405", m, JWKSPath, rec.Code)
		}
	}
}

func BenchmarkAssertionCached(b *testing.B) {
	a := upSigner(b, &assertiontest.FlakyStore{}, time.Now)
	who := authz.Subject{Email: "a@example.com", Groups: []string{"eng", "sre"}, MFAAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := a.Assertion(who, "grafana"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAssertionSign(b *testing.B) {
	a := upSigner(b, &assertiontest.FlakyStore{}, time.Now)
	ring := a.ring.Load()
	who := authz.Subject{Email: "a@example.com", Groups: []string{"eng", "sre"}, MFAAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.sign(ring, who, "grafana", 1, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
