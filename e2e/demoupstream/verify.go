package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// assertionClaims are the claims of Gatehouse's X-Gatehouse-Jwt-Assertion.
type assertionClaims struct {
	jwt.Claims
	Email  string   `json:"email"`
	Groups []string `json:"groups"`
	MFAAt  int64    `json:"mfa_at"`
}

// verifier checks assertions against the issuer's JWKS, fetching it on
// first use and again (at most every refetchEvery) when a token names an
// unknown key.
type verifier struct {
	jwksURL  string
	issuer   string
	audience string
	client   *http.Client
	now      func() time.Time

	mu      sync.Mutex // guards keys and fetched
	keys    jose.JSONWebKeySet
	fetched time.Time
}

const refetchEvery = 10 * time.Second

func newVerifier(issuer, audience string, client *http.Client) *verifier {
	issuer = strings.TrimRight(issuer, "/")
	return &verifier{
		jwksURL: issuer + "/.well-known/jwks.json", issuer: issuer, audience: audience,
		client: client, now: time.Now,
	}
}

// Verify checks the compact ES256 token's signature, issuer, audience and
// validity period, and returns its claims.
func (v *verifier) Verify(ctx context.Context, token string) (*assertionClaims, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if len(tok.Headers) != 1 || tok.Headers[0].KeyID == "" {
		return nil, errors.New("no key ID in the token header")
	}
	key, err := v.key(ctx, tok.Headers[0].KeyID)
	if err != nil {
		return nil, err
	}
	var c assertionClaims
	if err := tok.Claims(key.Key, &c); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if err := c.Validate(jwt.Expected{Issuer: v.issuer, AnyAudience: jwt.Audience{v.audience}, Time: v.now()}); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	if c.Expiry == nil || c.Expiry.Time().Sub(v.now()) > 5*time.Minute+time.Minute {
		return nil, errors.New("claims: no exp or valid for more than 5 minutes")
	}
	return &c, nil
}

// key returns the JWKS key kid, refetching the set if kid is unknown.
func (v *verifier) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if ks := v.keys.Key(kid); len(ks) == 1 {
		return &ks[0], nil
	}
	if !v.fetched.IsZero() && v.now().Sub(v.fetched) < refetchEvery {
		return nil, fmt.Errorf("unknown key %q", kid)
	}
	v.fetched = v.now()
	set, err := v.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS %s: %w", v.jwksURL, err)
	}
	v.keys = set
	if ks := v.keys.Key(kid); len(ks) == 1 {
		return &ks[0], nil
	}
	return nil, fmt.Errorf("unknown key %q", kid)
}

func (v *verifier) fetch(ctx context.Context) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.jwksURL, nil)
	if err != nil {
		return set, err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return set, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return set, fmt.Errorf("status %s", resp.Status)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set)
	return set, err
}
