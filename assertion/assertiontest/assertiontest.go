// Package assertiontest helps tests check the assertions an upstream
// receives: it fetches a JWKS, verifies a token the way an upstream would,
// and offers a key store that fails on demand. It does not import package
// assertion, so that package's own tests can use it too.
package assertiontest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-dev/gatehouse/store"
)

// Issuer is the issuer the tests' signers use (public_url without the
// trailing slash).
const Issuer = "https://gate.example.test"

// FetchJWKS fetches and decodes the JWKS that h serves at path.
func FetchJWKS(t testing.TB, h http.Handler, path string) (jose.JSONWebKeySet, http.Header, []byte) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + path)
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

// Verify verifies token against set the way an upstream would (ES256, a
// kid from the set, issuer Issuer, audience aud, valid at at, no leeway)
// and decodes its claims into claims (a pointer to a struct).
func Verify(token string, set jose.JSONWebKeySet, aud string, at time.Time, claims any) error {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return err
	}
	if len(tok.Headers) != 1 {
		return errors.New("want one signature")
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		return errors.New("kid not in jwks")
	}
	var std jwt.Claims
	if err := tok.Claims(keys[0].Key, &std, claims); err != nil {
		return err
	}
	return std.ValidateWithLeeway(jwt.Expected{Issuer: Issuer, AnyAudience: jwt.Audience{aud}, Time: at}, 0)
}

// FlakyStore is a key store (Get and CompareAndSwap of store.Store) that
// fails every call while Fail is set and otherwise holds one value.
type FlakyStore struct {
	mu   sync.Mutex // guards Val and Fail
	Val  []byte
	Fail bool
}

// SetFail makes every later call fail (or succeed again).
func (s *FlakyStore) SetFail(fail bool) { s.mu.Lock(); s.Fail = fail; s.mu.Unlock() }

// Get returns the value, store.ErrNotFound when there is none.
func (s *FlakyStore) Get(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Fail {
		return nil, errors.New("store down")
	}
	if s.Val == nil {
		return nil, store.ErrNotFound
	}
	return s.Val, nil
}

// CompareAndSwap replaces the value when it equals old.
func (s *FlakyStore) CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Fail {
		return false, errors.New("store down")
	}
	if string(old) != string(s.Val) || (old == nil) != (s.Val == nil) {
		return false, nil
	}
	s.Val = new
	return true, nil
}
