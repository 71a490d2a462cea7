// Package assertion signs the identity assertion Gatehouse sends to
// upstreams (a short-lived ES256 JWT in X-Gatehouse-Jwt-Assertion), keeps
// the signing key ring in the store so that every replica signs with the
// same keys, rotates it, and serves its public keys as a JWKS. It also
// carries the admitted identity from the gate to the hop in a request
// context (WithSubject, SubjectFrom).
package assertion

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Assertion lifetimes.
const (
	// DefaultLifetime is how long a signed assertion is valid.
	DefaultLifetime = 2 * time.Minute
	// MaxLifetime is the longest lifetime the signer accepts.
	MaxLifetime = 5 * time.Minute
	// maxCachedAssertions bounds the assertion cache.
	maxCachedAssertions = 10000
	// storeTimeout bounds a key ring refresh made on the request path.
	storeTimeout = 2 * time.Second
)

// Config configures a Signer.
type Config struct {
	// Store holds the key ring shared by all replicas. Required.
	Store KeyStore
	// Secrets seals the key ring in the store. Required.
	Secrets *secrets.Keyring
	// Issuer is the "iss" claim: the public_url (a trailing slash is
	// removed). Required.
	Issuer string
	// Lifetime is how long each assertion is valid; zero means
	// DefaultLifetime. It must not exceed MaxLifetime.
	Lifetime time.Duration
	// Logger receives key rotation and store failures. If nil, logs are
	// discarded.
	Logger *slog.Logger
	// Now returns the current time; if nil, time.Now is used.
	Now func() time.Time
}

// Signer signs the identity assertions Gatehouse sends upstream in
// X-Gatehouse-Jwt-Assertion: compact ES256 JWTs with the claims
//
//	iss     the public_url
//	aud     the route name (config routes[].name)
//	sub     the person's email as the IdP reported it
//	email   the same email
//	groups  the IdP groups (always an array)
//	mfa_at  Unix time of the last WebAuthn assertion
//	iat, nbf, exp (exp - iat = Lifetime, at most 5 minutes), jti
//
// and a "kid" header naming the key in the JWKS. Keys are ECDSA P-256 with
// RFC 7638 thumbprints as key IDs, kept in the store under
// KeysStoreKey so that every replica signs with the same ring. A
// new key is made every KeyRotation, published an hour before it
// signs, and kept in the JWKS for KeyRetention after it is
// superseded.
//
// Signing costs tens of microseconds, so an assertion is reused for the
// same (route, identity) for a quarter of its lifetime: an upstream always
// receives one with at least three quarters of its lifetime left. An
// assertion is a bearer statement of identity, not a one-time token; its
// jti identifies the token, not the request. An Signer is safe
// for concurrent use.
type Signer struct {
	st       KeyStore
	secrets  *secrets.Keyring
	issuer   string
	lifetime time.Duration
	reuse    time.Duration
	logger   *slog.Logger
	now      func() time.Time

	ring      atomic.Pointer[keyRing]
	refreshMu sync.Mutex // held while one goroutine refreshes the ring

	seed   maphash.Seed
	cache  sync.Map // uint64 -> *cachedAssertion
	cached atomic.Int64
}

// cachedAssertion is one signed assertion and what it was signed for.
type cachedAssertion struct {
	aud, email   string
	groups       []string
	mfaAt        int64
	token        string
	groupsHeader string
	reuseUntil   time.Time
}

// NewSigner loads the key ring from the store, creating or
// rotating it as needed.
func NewSigner(ctx context.Context, cfg Config) (*Signer, error) {
	if cfg.Store == nil {
		return nil, errors.New("assertion signer: Store is required")
	}
	if cfg.Secrets == nil {
		return nil, errors.New("assertion signer: Secrets is required (the key ring is kept sealed)")
	}
	issuer := strings.TrimSuffix(cfg.Issuer, "/")
	if issuer == "" {
		return nil, errors.New("assertion signer: Issuer is required")
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Lifetime < 10*time.Second || cfg.Lifetime > MaxLifetime {
		return nil, fmt.Errorf("assertion signer: lifetime %v out of range 10s..%v", cfg.Lifetime, MaxLifetime)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Signer{
		st: cfg.Store, secrets: cfg.Secrets, issuer: issuer, lifetime: cfg.Lifetime, reuse: cfg.Lifetime / 4,
		logger: cfg.Logger, now: cfg.Now, seed: maphash.MakeSeed(),
	}
	ring, err := loadOrRotate(ctx, a.st, a.secrets, a.now())
	if err != nil {
		return nil, fmt.Errorf("assertion signer: %w", err)
	}
	a.ring.Store(ring)
	return a, nil
}

// Refresh rereads the key ring from the store and rotates it when due.
// The signer calls it by itself at most once a minute while in use; a
// server may also call it periodically. On failure the previous ring stays
// in use.
func (a *Signer) Refresh(ctx context.Context) error {
	a.refreshMu.Lock()
	defer a.refreshMu.Unlock()
	return a.refreshLocked(ctx)
}

func (a *Signer) refreshLocked(ctx context.Context) error {
	now := a.now()
	ring, err := loadOrRotate(ctx, a.st, a.secrets, now)
	if err != nil {
		// Keep the old ring, and retry only after another interval.
		old := a.ring.Load()
		cp := *old
		cp.loaded = now
		a.ring.Store(&cp)
		return err
	}
	if old := a.ring.Load(); old.signKID != ring.signKID {
		a.logger.Info("Assertion signing key changed.", "kid", ring.signKID)
	}
	a.ring.Store(ring)
	return nil
}

// currentRing returns the ring, refreshing it first when it is due and no
// other goroutine is already doing so.
func (a *Signer) currentRing(now time.Time) *keyRing {
	ring := a.ring.Load()
	if now.Sub(ring.loaded) < assertionRefresh || !a.refreshMu.TryLock() {
		return ring
	}
	defer a.refreshMu.Unlock()
	if ring = a.ring.Load(); now.Sub(ring.loaded) < assertionRefresh {
		return ring
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := a.refreshLocked(ctx); err != nil {
		a.logger.Warn("Failed to refresh assertion signing keys; keeping the current ones.", "error", err)
	}
	return a.ring.Load()
}

// Assertion returns a signed assertion of who for the route named aud and
// the comma-separated groups header value, reusing a recent one when it was
// signed for exactly the same identity and route.
func (a *Signer) Assertion(who authz.Subject, aud string) (token, groups string, err error) {
	now := a.now()
	mfaAt := int64(0)
	if !who.MFAAt.IsZero() {
		mfaAt = who.MFAAt.Unix()
	}
	h := a.key(aud, who, mfaAt)
	if v, ok := a.cache.Load(h); ok {
		c := v.(*cachedAssertion)
		if now.Before(c.reuseUntil) && c.matches(aud, who, mfaAt) {
			return c.token, c.groupsHeader, nil
		}
	}
	ring := a.currentRing(now)
	token, err = a.sign(ring, who, aud, mfaAt, now)
	if err != nil {
		return "", "", err
	}
	c := &cachedAssertion{
		aud: aud, email: who.Email, groups: append([]string(nil), who.Groups...), mfaAt: mfaAt,
		token: token, groupsHeader: strings.Join(who.Groups, ","), reuseUntil: now.Add(a.reuse),
	}
	if _, loaded := a.cache.Swap(h, c); !loaded && a.cached.Add(1) > maxCachedAssertions {
		a.sweep(now)
	}
	return token, c.groupsHeader, nil
}

// Claims are the claims of one assertion, as an upstream decodes them.
type Claims struct {
	jwt.Claims
	Email  string   `json:"email"`
	Groups []string `json:"groups"`
	MFAAt  int64    `json:"mfa_at,omitempty"`
}

func (a *Signer) sign(ring *keyRing, who authz.Subject, aud string, mfaAt int64, now time.Time) (string, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("assertion id: %w", err)
	}
	groups := who.Groups
	if groups == nil {
		groups = []string{}
	}
	iat := jwt.NewNumericDate(now)
	c := Claims{
		Claims: jwt.Claims{
			Issuer:    a.issuer,
			Subject:   who.Email,
			Audience:  jwt.Audience{aud},
			IssuedAt:  iat,
			NotBefore: iat,
			Expiry:    jwt.NewNumericDate(now.Add(a.lifetime)),
			ID:        base64.RawURLEncoding.EncodeToString(id[:]),
		},
		Email:  who.Email,
		Groups: groups,
		MFAAt:  mfaAt,
	}
	tok, err := jwt.Signed(ring.signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign assertion: %w", err)
	}
	return tok, nil
}

// key hashes what an assertion depends on.
func (a *Signer) key(aud string, who authz.Subject, mfaAt int64) uint64 {
	var h maphash.Hash
	h.SetSeed(a.seed)
	h.WriteString(aud)
	h.WriteByte(0)
	h.WriteString(who.Email)
	h.WriteByte(0)
	for _, g := range who.Groups {
		h.WriteString(g)
		h.WriteByte(0)
	}
	var b [8]byte
	for i := range b {
		b[i] = byte(mfaAt >> (8 * i))
	}
	h.Write(b[:])
	return h.Sum64()
}

func (c *cachedAssertion) matches(aud string, who authz.Subject, mfaAt int64) bool {
	if c.aud != aud || c.email != who.Email || c.mfaAt != mfaAt || len(c.groups) != len(who.Groups) {
		return false
	}
	for i, g := range c.groups {
		if who.Groups[i] != g {
			return false
		}
	}
	return true
}

// sweep drops expired cache entries, and everything if that is not enough.
func (a *Signer) sweep(now time.Time) {
	n := int64(0)
	a.cache.Range(func(k, v any) bool {
		if !now.Before(v.(*cachedAssertion).reuseUntil) {
			a.cache.Delete(k)
		} else {
			n++
		}
		return true
	})
	if n > maxCachedAssertions/2 {
		a.cache.Clear()
		n = 0
	}
	a.cached.Store(n)
}
