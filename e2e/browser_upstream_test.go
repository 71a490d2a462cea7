package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// btSeen is what the test upstream saw in one request after verifying its
// assertion.
type btSeen struct {
	User, Email, Groups string // the X-Gatehouse-* headers
	URI                 string // the request URI
	Aud, Sub            string // verified claims
	Cookie              string // the Cookie header
}

// btUpstream is a web application behind Gatehouse, served over plain HTTP
// on loopback. Every request must carry an assertion that verifies against
// PUBLIC_URL/.well-known/jwks.json (fetched over HTTPS through Gatehouse,
// trusting the test CA), with issuer PUBLIC_URL, audience one of the route
// names, a lifetime of at most 5 minutes and sub/email equal to
// X-Gatehouse-User; otherwise it answers 401. It echoes the identity, the
// path and the query as text, and echoes WebSocket messages at /ws.
type btUpstream struct {
	URL       string
	publicURL string
	client    *http.Client
	routes    map[string]bool
	conns     atomic.Int64 // connections open to it (Gatehouse's pool)

	mu   sync.Mutex // guards seen, bad
	seen []btSeen
	bad  []string
}

func startBTUpstream(t *testing.T, publicURL string, gatehouseAddr string, ca *harness.CA, routes ...string) *btUpstream {
	t.Helper()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	u := &btUpstream{
		publicURL: publicURL,
		routes:    map[string]bool{},
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			// Every test host name is Gatehouse on loopback.
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, gatehouseAddr)
			},
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
		}},
	}
	for _, r := range routes {
		u.routes[r] = true
	}
	srv := httptest.NewUnstartedServer(u)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			u.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			u.conns.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	u.URL = srv.URL
	return u
}

func (u *btUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	claims, err := u.verify(r.Context(), r.Header.Get("X-Gatehouse-Jwt-Assertion"))
	if err == nil && (claims.Subject != r.Header.Get("X-Gatehouse-User") || claims.Email != r.Header.Get("X-Gatehouse-Email")) {
		err = fmt.Errorf("assertion names %q/%q, headers %q/%q", claims.Subject, claims.Email,
			r.Header.Get("X-Gatehouse-User"), r.Header.Get("X-Gatehouse-Email"))
	}
	if err != nil {
		u.mu.Lock()
		u.bad = append(u.bad, r.RequestURI+": "+err.Error())
		u.mu.Unlock()
		http.Error(w, "assertion refused: "+err.Error(), http.StatusUnauthorized)
		return
	}
	s := btSeen{User: r.Header.Get("X-Gatehouse-User"), Email: r.Header.Get("X-Gatehouse-Email"),
		Groups: r.Header.Get("X-Gatehouse-Groups"), URI: r.RequestURI, Aud: claims.Audience[0], Sub: claims.Subject,
		Cookie: r.Header.Get("Cookie")}
	u.mu.Lock()
	u.seen = append(u.seen, s)
	u.mu.Unlock()
	if r.URL.Path == "/ws" {
		u.echo(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!doctype html><title>upstream</title><pre id=\"echo\">assertion=verified\nuser=%s\ngroups=%s\naud=%s\nuri=%s\n</pre>",
		html.EscapeString(s.User), html.EscapeString(s.Groups), html.EscapeString(s.Aud), html.EscapeString(s.URI))
}

// echo is a WebSocket echo. The browser's Origin is an app host of
// Gatehouse; the upstream trusts those.
func (u *btUpstream) echo(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: []string{"*.test:*"}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, append([]byte("echo:"), msg...)); err != nil {
			return
		}
	}
}

type btClaims struct {
	jwt.Claims
	Email  string   `json:"email"`
	Groups []string `json:"groups"`
	MFAAt  int64    `json:"mfa_at"`
}

// verify checks an assertion against the JWKS Gatehouse publishes.
func (u *btUpstream) verify(ctx context.Context, token string) (*btClaims, error) {
	if token == "" {
		return nil, errors.New("no assertion")
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if len(tok.Headers) != 1 || tok.Headers[0].KeyID == "" {
		return nil, errors.New("no key ID")
	}
	set, err := u.jwks(ctx)
	if err != nil {
		return nil, err
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		return nil, fmt.Errorf("key %q not in the JWKS", tok.Headers[0].KeyID)
	}
	var c btClaims
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if len(c.Audience) != 1 || !u.routes[c.Audience[0]] {
		return nil, fmt.Errorf("audience %v", c.Audience)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: u.publicURL, AnyAudience: c.Audience, Time: time.Now()}, 5*time.Second); err != nil {
		return nil, err
	}
	if c.Expiry == nil || c.IssuedAt == nil || c.Expiry.Time().Sub(c.IssuedAt.Time()) > 5*time.Minute {
		return nil, errors.New("lifetime missing or longer than 5 minutes")
	}
	if c.MFAAt == 0 {
		return nil, errors.New("no mfa_at")
	}
	return &c, nil
}

// jwks fetches PUBLIC_URL/.well-known/jwks.json (no cache: every request
// proves the published keys verify it).
func (u *btUpstream) jwks(ctx context.Context) (*jose.JSONWebKeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(u.publicURL, "/")+"/.well-known/jwks.json", nil)
	if err != nil {
		return nil, err
	}
	res, err := u.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: %s", res.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	return &set, nil
}

// seenAt returns the latest request the upstream saw for uri. A test that
// sends its own request looks it up by URI: the browser may fetch
// /favicon.ico at any moment, so "the last request" can be the browser's.
func (u *btUpstream) seenAt(uri string) (btSeen, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := len(u.seen) - 1; i >= 0; i-- {
		if u.seen[i].URI == uri {
			return u.seen[i], true
		}
	}
	return btSeen{}, false
}

// last returns what the upstream saw most recently, and the refusals.
func (u *btUpstream) last() (btSeen, []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var s btSeen
	if len(u.seen) > 0 {
		s = u.seen[len(u.seen)-1]
	}
	return s, append([]string(nil), u.bad...)
}
