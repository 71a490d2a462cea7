package identity

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/store"
)

// FlowTTL is how long a started OIDC login stays valid.
const FlowTTL = 10 * time.Minute

// Limits on what an IdP may hand us.
const (
	maxGroups     = 256
	maxGroupLen   = 256
	maxReturnTo   = maxReturnLen
	maxStateLen   = 128
	maxCodeLen    = 2048
	maxSecretSize = 4096
)

// Login is the identity an OIDC login established.
type Login struct {
	Email   string
	Subject string // the IdP's "sub"
	Groups  []string
	// ReturnTo is the return URL given to BeginLogin (already checked by the
	// caller with SafeReturn; identity stores it verbatim).
	ReturnTo string
	// At is when the login finished.
	At time.Time
}

// ErrIdPUnavailable: the OIDC identity provider could not be reached, or
// its discovery document was refused (e.g. an issuer mismatch), so nobody
// can sign in right now. Sessions that already exist are unaffected. It is
// returned wrapped; test with errors.Is.
var ErrIdPUnavailable = errors.New("identity: identity provider unavailable")

// Discovery timing. The attempt in NewOIDC is short so that a dead IdP
// delays start-up only briefly; an attempt made for a sign-in may take
// longer. After a failed attempt the next one waits discoveryRetry, so a
// storm of sign-ins does not hammer a dead IdP.
const (
	startDiscoveryTimeout = 5 * time.Second
	discoveryTimeout      = 10 * time.Second
	discoveryRetry        = 5 * time.Second
)

// OIDC runs the authorization-code flow with PKCE (S256), state and nonce
// against one issuer. It discovers the issuer lazily: sign-ins need the IdP,
// nothing else does. It is safe for concurrent use.
type OIDC struct {
	d           Deps
	client      *http.Client
	issuer      string
	oauth       oauth2.Config // without Endpoint, which discovery fills in
	groupsClaim string

	mu       sync.Mutex    // guards the fields below
	prov     *discovery    // nil until a discovery succeeds; then fixed
	inflight chan struct{} // closed when the running discovery ends; nil if none
	failedAt time.Time     // when the last discovery failed (d.Now)
	failErr  error         // why it failed
}

// discovery is what a successful discovery of the issuer yields.
type discovery struct {
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// flow is the server-side state of one started login, keyed by the hash of
// its state parameter.
type flow struct {
	Verifier string `json:"verifier"`
	Nonce    string `json:"nonce"`
	FlowHash string `json:"flow"` // hash of the browser's flow cookie
	ReturnTo string `json:"return_to"`
}

func flowKey(state string) string { return "identity/oidcflow/" + hashToken(state) }

// NewOIDC returns an OIDC for the issuer cfg.Issuer and the redirect URL
// (PUBLIC_URL + "/auth/callback"), talking to the IdP with client (which
// should trust cfg.CARoots; see SSOHTTPClient; nil means
// SSOHTTPClient(cfg)). The client secret is read from cfg.ClientSecretFile;
// it is never logged. A missing or empty secret file is an error.
//
// NewOIDC does not need the IdP to answer: it tries discovery once, briefly,
// and if that fails it logs a warning and returns the OIDC anyway. Sign-ins
// then fail with ErrIdPUnavailable until a later attempt (see BeginLogin)
// succeeds; nobody signs in without the IdP.
func NewOIDC(ctx context.Context, d Deps, cfg config.SSO, redirectURL string, client *http.Client) (*OIDC, error) {
	d, err := d.check()
	if err != nil {
		return nil, err
	}
	if cfg.Issuer == "" || cfg.ClientID == "" || redirectURL == "" {
		return nil, errors.New("identity: oidc: issuer, client_id and redirect URL are required")
	}
	// Config resolves absent scopes and groups_claim to their defaults;
	// empty ones here mean the Config skipped that step. Guessing would
	// let this door and the documented default drift apart, and an empty
	// claim would silently give everyone no groups.
	if len(cfg.Scopes) == 0 || cfg.GroupsClaim == "" {
		return nil, errors.New("identity: oidc: sso.scopes and sso.groups_claim are required")
	}
	if client == nil {
		if client, err = SSOHTTPClient(cfg); err != nil {
			return nil, err
		}
	}
	secret, err := readSecret(cfg.ClientSecretFile)
	if err != nil {
		return nil, err
	}
	// Not a default but a rule of the protocol: without openid there is
	// no ID token, so it is always requested.
	scopes := slices.Clone(cfg.Scopes)
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		scopes = append([]string{oidc.ScopeOpenID}, scopes...)
	}
	o := &OIDC{
		d:      d,
		client: client,
		issuer: cfg.Issuer,
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: secret, RedirectURL: redirectURL, Scopes: scopes,
		},
		groupsClaim: cfg.GroupsClaim,
	}
	sctx, cancel := context.WithTimeout(ctx, startDiscoveryTimeout)
	defer cancel()
	if _, err := o.provider(sctx); err != nil {
		d.Logger.WarnContext(ctx, "identity provider unreachable; sign-ins will fail until it answers",
			"issuer", cfg.Issuer, "error", err)
	}
	return o, nil
}

// provider returns the discovered issuer, discovering it if no attempt has
// succeeded yet. Concurrent callers share one attempt; after a failure,
// callers within discoveryRetry get that failure without a new attempt. A
// success is kept for the life of o. Errors wrap ErrIdPUnavailable; the
// caller logs them.
func (o *OIDC) provider(ctx context.Context) (*discovery, error) {
	for {
		o.mu.Lock()
		if p := o.prov; p != nil {
			o.mu.Unlock()
			return p, nil
		}
		if ch := o.inflight; ch != nil {
			o.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: issuer %q: %w", ErrIdPUnavailable, o.issuer, ctx.Err())
			}
		}
		if !o.failedAt.IsZero() && o.d.Now().Sub(o.failedAt) < discoveryRetry {
			err := o.failErr
			o.mu.Unlock()
			return nil, err
		}
		ch := make(chan struct{})
		o.inflight = ch
		o.mu.Unlock()

		p, err := o.discover(ctx)

		o.mu.Lock()
		o.inflight = nil
		recovered := false
		if err == nil {
			o.prov = p
			recovered = !o.failedAt.IsZero()
		} else {
			err = fmt.Errorf("%w: discover oidc issuer %q: %w", ErrIdPUnavailable, o.issuer, err)
			o.failedAt, o.failErr = o.d.Now(), err
		}
		close(ch)
		o.mu.Unlock()
		if recovered {
			o.d.Logger.InfoContext(ctx, "Identity provider answers again; sign-ins work.", "issuer", o.issuer)
		}
		return p, err
	}
}

// discover fetches the issuer's discovery document. It is not cut short by
// the caller's cancellation (others may be waiting for it) but is bounded
// by discoveryTimeout and by ctx's deadline. go-oidc refuses a document
// whose issuer differs from o.issuer.
func (o *OIDC) discover(ctx context.Context) (*discovery, error) {
	dctx := context.WithoutCancel(ctx)
	deadline := time.Now().Add(discoveryTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dctx, cancel := context.WithDeadline(dctx, deadline)
	defer cancel()
	dctx = oidc.ClientContext(dctx, o.client)
	prov, err := oidc.NewProvider(dctx, o.issuer)
	if err != nil {
		return nil, err
	}
	oc := o.oauth
	oc.Endpoint = prov.Endpoint()
	// The key set fetches keys with the client in this context; go-oidc
	// drops its cancellation and deadline.
	v := prov.VerifierContext(oidc.ClientContext(context.Background(), o.client),
		&oidc.Config{ClientID: o.oauth.ClientID, Now: o.d.Now})
	return &discovery{oauth: oc, verifier: v}, nil
}

// readSecret reads a secret file, trimming surrounding whitespace.
func readSecret(path string) (string, error) {
	if path == "" {
		return "", errors.New("identity: oidc: client_secret_file is required")
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read client secret: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return "", fmt.Errorf("read client secret: %w", err)
	}
	if len(b) > maxSecretSize {
		return "", errors.New("identity: oidc: client secret file too large")
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New("identity: oidc: client secret file is empty")
	}
	return s, nil
}

// SSOHTTPClient returns an HTTP client that trusts the system roots plus the
// PEM files in cfg.CARoots, with bounded timeouts, for talking to the IdP.
func SSOHTTPClient(cfg config.SSO) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, p := range cfg.CARoots {
		pem, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read sso ca_roots: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sso ca_roots %s: no PEM certificates", p)
		}
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// BeginLogin starts a login. It stores state, nonce and the PKCE verifier
// server-side (single use, FlowTTL) and returns the IdP URL to redirect the
// browser to and a random flow value that the caller must set as a
// short-lived, HttpOnly cookie on the portal; FinishLogin requires it back,
// which binds the callback to the browser that started the login. If the
// issuer has not been discovered yet, BeginLogin discovers it first; when
// the IdP cannot be reached (or was tried and failed within the last few
// seconds) the error wraps ErrIdPUnavailable.
func (o *OIDC) BeginLogin(ctx context.Context, returnTo string) (authURL, flowCookie string, err error) {
	if len(returnTo) > maxReturnTo {
		return "", "", errors.New("identity: oidc: return URL too long")
	}
	prov, err := o.provider(ctx)
	if err != nil {
		return "", "", err
	}
	state, err := randomToken(32)
	if err != nil {
		return "", "", err
	}
	nonce, err := randomToken(32)
	if err != nil {
		return "", "", err
	}
	fc, err := randomToken(32)
	if err != nil {
		return "", "", err
	}
	f := flow{Verifier: oauth2.GenerateVerifier(), Nonce: nonce, FlowHash: hashToken(fc), ReturnTo: returnTo}
	raw, err := json.Marshal(f)
	if err != nil {
		return "", "", err
	}
	if err := o.d.Store.Set(ctx, flowKey(state), raw, FlowTTL); err != nil {
		return "", "", fmt.Errorf("store login flow: %w", err)
	}
	u := prov.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(f.Verifier))
	return u, fc, nil
}

// FinishLogin completes a login from the callback's state and code and the
// flow cookie. It consumes the stored flow (a second call with the same state
// fails), exchanges the code with the PKCE verifier, verifies the ID token
// (signature, issuer, audience, expiry, nonce), refuses email_verified=false
// and a missing email, and reads groups from the configured claim. Every
// failure is audited as "sso.login" deny and returned wrapping ErrForbidden,
// ErrNotFound or, when the issuer cannot be discovered, ErrIdPUnavailable;
// the error text is for logs, not for the browser.
func (o *OIDC) FinishLogin(ctx context.Context, state, code, flowCookie string) (*Login, error) {
	l, err := o.finish(ctx, state, code, flowCookie)
	if err != nil {
		actor := ""
		if l != nil {
			actor = l.Email
		}
		o.d.deny(ctx, EventSSOLogin, actor, err.Error(), nil)
		return nil, err
	}
	if err := o.d.record(ctx, audit.Event{Type: EventSSOLogin, Actor: l.Email, Decision: audit.Allow,
		Details: map[string]string{"sub": l.Subject, "groups": strings.Join(l.Groups, ",")}}); err != nil {
		return nil, err
	}
	return l, nil
}

func (o *OIDC) finish(ctx context.Context, state, code, flowCookie string) (*Login, error) {
	if state == "" || code == "" || flowCookie == "" || len(state) > maxStateLen || len(code) > maxCodeLen || len(flowCookie) > maxStateLen {
		return nil, fmt.Errorf("%w: missing or oversized state, code or flow cookie", ErrForbidden)
	}
	prov, err := o.provider(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := o.d.Store.GetDel(ctx, flowKey(state))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown, used or expired login state", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load login flow: %w", err)
	}
	var f flow
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("decode login flow: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(hashToken(flowCookie)), []byte(f.FlowHash)) != 1 {
		return nil, fmt.Errorf("%w: login finished in another browser than it started", ErrForbidden)
	}
	cctx := oidc.ClientContext(ctx, o.client)
	tok, err := prov.oauth.Exchange(cctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return nil, fmt.Errorf("%w: exchange code: %w", ErrForbidden, err)
	}
	rawID, ok := tok.Extra("id_token").(string)
	if !ok || rawID == "" {
		return nil, fmt.Errorf("%w: token response has no id_token", ErrForbidden)
	}
	idt, err := prov.verifier.Verify(cctx, rawID)
	if err != nil {
		return nil, fmt.Errorf("%w: verify id token: %w", ErrForbidden, err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return nil, fmt.Errorf("%w: id token nonce mismatch", ErrForbidden)
	}
	var claims map[string]json.RawMessage
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: decode claims: %w", ErrForbidden, err)
	}
	var email string
	if err := json.Unmarshal(claims["email"], &email); err != nil || !plausibleEmail(email) {
		return nil, fmt.Errorf("%w: id token has no usable email claim", ErrForbidden)
	}
	l := &Login{Email: email, Subject: idt.Subject, ReturnTo: f.ReturnTo, At: o.d.Now()}
	if v, present := claims["email_verified"]; present {
		var verified bool
		if err := json.Unmarshal(v, &verified); err != nil || !verified {
			return l, fmt.Errorf("%w: email not verified by the IdP", ErrForbidden)
		}
	}
	if l.Groups, err = parseGroups(claims[o.groupsClaim]); err != nil {
		return l, fmt.Errorf("%w: groups claim %q: %w", ErrForbidden, o.groupsClaim, err)
	}
	return l, nil
}

// parseGroups accepts a missing claim, a string or an array of strings.
func parseGroups(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		raw, _ = json.Marshal([]string{one})
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("not a string or a list of strings")
	}
	if len(many) > maxGroups {
		return nil, fmt.Errorf("more than %d groups", maxGroups)
	}
	out := make([]string, 0, len(many))
	for _, g := range many {
		if g == "" || len(g) > maxGroupLen || strings.ContainsFunc(g, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, errors.New("empty, oversized or control characters in a group")
		}
		out = append(out, g)
	}
	return out, nil
}
