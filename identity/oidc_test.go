package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/testlog"
)

// testIdP is a minimal OIDC provider on an httptest TLS server. Its token
// endpoint checks the client secret and the PKCE verifier, then returns an
// ID token built by claims.
type testIdP struct {
	srv    *httptest.Server
	key    *rsa.PrivateKey
	other  *rsa.PrivateKey // a key not in the JWKS
	clk    *clock
	secret string

	mu sync.Mutex // guards the fields below
	// codes maps an issued code to the authorization request's query.
	codes map[string]url.Values
	// claims edits the default claims of the next ID token.
	claims func(c map[string]any, now time.Time)
	// signWith overrides the signing key.
	signWith *rsa.PrivateKey
	// verifiers records every code_verifier the token endpoint saw.
	verifiers []string

	// down makes discovery answer 503; wrongIssuer makes it name another
	// issuer. discoveries counts discovery requests.
	down, wrongIssuer atomic.Bool
	discoveries       atomic.Int32
}

// idpKeys generates the IdP's signing key and a foreign key once per test
// binary: RSA key generation is slow under the race detector.
var idpKeys = sync.OnceValues(func() (*rsa.PrivateKey, *rsa.PrivateKey) {
	k1, err1 := rsa.GenerateKey(rand.Reader, 2048)
	k2, err2 := rsa.GenerateKey(rand.Reader, 2048)
	if err1 != nil || err2 != nil {
		panic("rsa.GenerateKey failed")
	}
	return k1, k2
})

func newTestIdP(t *testing.T, clk *clock) *testIdP { return newTestIdPOn(t, clk, nil) }

// newTestIdPOn is newTestIdP serving on ln (nil: a new loopback listener).
func newTestIdPOn(t *testing.T, clk *clock, ln net.Listener) *testIdP {
	t.Helper()
	key, other := idpKeys()
	p := &testIdP{key: key, other: other, clk: clk, secret: "s3cret", codes: map[string]url.Values{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.discoveries.Add(1)
		if p.down.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		iss := p.srv.URL
		if p.wrongIssuer.Load() {
			iss = "https://other-issuer.example"
		}
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss, "authorization_endpoint": p.srv.URL + "/auth", "token_endpoint": p.srv.URL + "/token",
			"jwks_uri": p.srv.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewUnstartedServer(mux)
	if ln != nil {
		p.srv.Listener.Close()
		p.srv.Listener = ln
	}
	p.srv.Config.ErrorLog = log.New(testlog.Writer(t), "idp: ", 0)
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	return p
}

// authorize plays the browser and the IdP's login page: it takes the
// authorization URL and returns the callback's state and a code.
func (p *testIdP) authorize(t *testing.T, authURL string) (state, code string) {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, p.srv.URL+"/auth?") {
		t.Fatalf("auth URL %q", authURL)
	}
	q := u.Query()
	for _, k := range []string{"state", "nonce", "code_challenge", "redirect_uri", "client_id"} {
		if q.Get(k) == "" {
			t.Fatalf("auth URL lacks %s: %s", k, authURL)
		}
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("response_type") != "code" {
		t.Fatalf("auth URL is not code+S256: %s", authURL)
	}
	code, _ = randomToken(16)
	p.mu.Lock()
	p.codes[code] = q
	p.mu.Unlock()
	return q.Get("state"), code
}

func (p *testIdP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", 400)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != "gatehouse" || secret != p.secret {
		w.WriteHeader(401)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client"})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	q, ok := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code"))
	ver := r.PostForm.Get("code_verifier")
	p.verifiers = append(p.verifiers, ver)
	sum := sha256.Sum256([]byte(ver))
	if !ok || r.PostForm.Get("grant_type") != "authorization_code" || r.PostForm.Get("redirect_uri") != q.Get("redirect_uri") ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != q.Get("code_challenge") {
		w.WriteHeader(400)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
		return
	}
	now := p.clk.Now()
	claims := map[string]any{
		"iss": p.srv.URL, "aud": "gatehouse", "sub": "user-1", "nonce": q.Get("nonce"),
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"email": "ann@example.com", "email_verified": true, "groups": []string{"eng", "sre"},
	}
	if p.claims != nil {
		p.claims(claims, now)
	}
	key := p.key
	if p.signWith != nil {
		key = p.signWith
	}
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	payload, _ := json.Marshal(claims)
	jws, _ := signer.Sign(payload)
	idt, _ := jws.CompactSerialize()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": idt})
}

// resolvedSSO is s with config's defaults resolved, as config.Load does.
func resolvedSSO(s config.SSO) config.SSO {
	c := config.Config{SSO: s}
	c.ApplyDefaults()
	return c.SSO
}

// newTestOIDC builds an OIDC against p; an empty groupsClaim is config's
// default.
func newTestOIDC(t *testing.T, e *env, p *testIdP, groupsClaim string) *OIDC {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte(p.secret+"\n"), 0o600)
	cfg := resolvedSSO(config.SSO{Issuer: p.srv.URL, ClientID: "gatehouse", ClientSecretFile: secretFile, GroupsClaim: groupsClaim})
	o, err := NewOIDC(e.ctx(), e.d, cfg, "https://gate.example.com/auth/callback", p.srv.Client())
	if err != nil {
		t.Fatalf("NewOIDC: %v", err)
	}
	return o
}

func TestOIDCLogin(t *testing.T) {
	e := newEnv(t)
	p := newTestIdP(t, e.clk)
	o := newTestOIDC(t, e, p, "")
	ctx := e.ctx()

	authURL, flowCookie, err := o.BeginLogin(ctx, "https://grafana.example.com/d/1?x=y")
	if err != nil {
		t.Fatalf("BeginLogin: %v", err)
	}
	state, code := p.authorize(t, authURL)
	l, err := o.FinishLogin(ctx, state, code, flowCookie)
	if err != nil {
		t.Fatalf("FinishLogin: %v", err)
	}
	want := &Login{Email: "ann@example.com", Subject: "user-1", Groups: []string{"eng", "sre"}, ReturnTo: "https://grafana.example.com/d/1?x=y", At: e.clk.Now()}
	if diff := cmp.Diff(want, l); diff != "" {
		t.Errorf("FinishLogin (-want +got):\n%s", diff)
	}
	// The PKCE verifier went to the token endpoint (and matched, or the
	// IdP would have refused).
	if len(p.verifiers) != 1 || len(p.verifiers[0]) < 43 {
		t.Errorf("token endpoint saw verifiers %q", p.verifiers)
	}
	if ev := e.audit.find(EventSSOLogin, "allow"); len(ev) != 1 || ev[0].Actor != "ann@example.com" || ev[0].Source != "192.0.2.7:51000" {
		t.Errorf("login audit = %+v", ev)
	}
	// The state is single-use.
	if _, err := o.FinishLogin(ctx, state, code, flowCookie); !errors.Is(err, ErrNotFound) {
		t.Errorf("replayed callback = %v, want ErrNotFound", err)
	}
}

func TestOIDCRefusals(t *testing.T) {
	cases := []struct {
		name    string
		claims  func(c map[string]any, now time.Time)
		wrongFC bool // send another flow cookie
		badKey  bool // sign with a key not in the JWKS
		state   string
		wait    time.Duration
		want    error
	}{
		{name: "state mismatch", state: "not-the-state", want: ErrNotFound},
		{name: "flow cookie from another browser", wrongFC: true, want: ErrForbidden},
		{name: "nonce mismatch", claims: func(c map[string]any, _ time.Time) { c["nonce"] = "other" }, want: ErrForbidden},
		{name: "no nonce", claims: func(c map[string]any, _ time.Time) { delete(c, "nonce") }, want: ErrForbidden},
		{name: "wrong audience", claims: func(c map[string]any, _ time.Time) { c["aud"] = "someone-else" }, want: ErrForbidden},
		{name: "wrong issuer", claims: func(c map[string]any, _ time.Time) { c["iss"] = "https://evil.example" }, want: ErrForbidden},
		{name: "expired token", claims: func(c map[string]any, now time.Time) { c["exp"] = now.Add(-time.Minute).Unix() }, want: ErrForbidden},
		{name: "bad signature", badKey: true, want: ErrForbidden},
		{name: "email not verified", claims: func(c map[string]any, _ time.Time) { c["email_verified"] = false }, want: ErrForbidden},
		{name: "email_verified not a bool", claims: func(c map[string]any, _ time.Time) { c["email_verified"] = "yes" }, want: ErrForbidden},
		{name: "no email", claims: func(c map[string]any, _ time.Time) { delete(c, "email") }, want: ErrForbidden},
		{name: "email with control chars", claims: func(c map[string]any, _ time.Time) { c["email"] = "ann\n@example.com" }, want: ErrForbidden},
		{name: "groups not strings", claims: func(c map[string]any, _ time.Time) { c["groups"] = []any{1, 2} }, want: ErrForbidden},
		{name: "flow expired", wait: FlowTTL, want: ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p := newTestIdP(t, e.clk)
			o := newTestOIDC(t, e, p, "")
			ctx := e.ctx()
			p.claims = tc.claims
			if tc.badKey {
				p.signWith = p.other
			}
			authURL, fc, err := o.BeginLogin(ctx, "/")
			if err != nil {
				t.Fatal(err)
			}
			state, code := p.authorize(t, authURL)
			if tc.state != "" {
				state = tc.state
			}
			if tc.wrongFC {
				fc, _ = randomToken(32)
			}
			e.clk.Advance(tc.wait)
			l, err := o.FinishLogin(ctx, state, code, fc)
			if !errors.Is(err, tc.want) {
				t.Fatalf("FinishLogin = %+v, %v; want %v", l, err, tc.want)
			}
			if len(e.audit.find(EventSSOLogin, "deny")) != 1 || len(e.audit.find(EventSSOLogin, "allow")) != 0 {
				t.Errorf("audit = %+v", e.audit.Events())
			}
		})
	}
}

// TestOIDCScopes: the configured scopes are requested as they are, with
// openid added when missing (a protocol rule, not a default).
func TestOIDCScopes(t *testing.T) {
	cases := []struct {
		name   string
		scopes []string
		want   string
	}{
		{"config default", nil, "openid email profile groups"},
		{"configured", []string{"openid", "email"}, "openid email"},
		{"openid added", []string{"email", "roles"}, "openid email roles"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p := newTestIdP(t, e.clk)
			secretFile := filepath.Join(t.TempDir(), "secret")
			os.WriteFile(secretFile, []byte(p.secret), 0o600)
			cfg := resolvedSSO(config.SSO{Issuer: p.srv.URL, ClientID: "gatehouse", ClientSecretFile: secretFile, Scopes: tc.scopes})
			o, err := NewOIDC(e.ctx(), e.d, cfg, "https://gate.example.com/auth/callback", p.srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			authURL, _, err := o.BeginLogin(e.ctx(), "/")
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(authURL)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Query().Get("scope"); got != tc.want {
				t.Errorf("scope = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOIDCGroupsClaim(t *testing.T) {
	cases := []struct {
		name, claim string
		value       any
		want        []string
	}{
		{"list", "groups", []string{"a", "b"}, []string{"a", "b"}},
		{"single string", "groups", "admins", []string{"admins"}},
		{"custom claim", "roles", []string{"ops"}, []string{"ops"}},
		{"absent", "groups", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p := newTestIdP(t, e.clk)
			o := newTestOIDC(t, e, p, tc.claim)
			p.claims = func(c map[string]any, _ time.Time) {
				delete(c, "groups")
				if tc.value != nil {
					c[tc.claim] = tc.value
				}
			}
			authURL, fc, _ := o.BeginLogin(e.ctx(), "/")
			state, code := p.authorize(t, authURL)
			l, err := o.FinishLogin(e.ctx(), state, code, fc)
			if err != nil {
				t.Fatalf("FinishLogin: %v", err)
			}
			if diff := cmp.Diff(tc.want, l.Groups); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOIDCSetup(t *testing.T) {
	e := newEnv(t)
	p := newTestIdP(t, e.clk)
	ctx := context.Background()
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("x"), 0o600)
	ok := config.SSO{Issuer: p.srv.URL, ClientID: "gatehouse", ClientSecretFile: secret}
	// Each case is refused for its own reason: defaults are resolved first.
	cases := map[string]config.SSO{
		"no secret file":    resolvedSSO(config.SSO{Issuer: p.srv.URL, ClientID: "gatehouse"}),
		"empty secret file": resolvedSSO(config.SSO{Issuer: p.srv.URL, ClientID: "gatehouse", ClientSecretFile: empty}),
		"missing file":      resolvedSSO(config.SSO{Issuer: p.srv.URL, ClientID: "gatehouse", ClientSecretFile: "/nonexistent"}),
		"no client id":      resolvedSSO(config.SSO{Issuer: p.srv.URL, ClientSecretFile: secret}),
		// Unresolved defaults are refused, never re-defaulted here.
		"no scopes":       {Issuer: p.srv.URL, ClientID: "gatehouse", ClientSecretFile: secret, GroupsClaim: "groups"},
		"no groups claim": {Issuer: p.srv.URL, ClientID: "gatehouse", ClientSecretFile: secret, Scopes: []string{"openid"}},
	}
	for name, cfg := range cases {
		if _, err := NewOIDC(ctx, e.d, cfg, "https://gate.example.com/auth/callback", p.srv.Client()); err == nil {
			t.Errorf("NewOIDC(%s) succeeded", name)
		}
	}
	if _, err := NewOIDC(ctx, e.d, resolvedSSO(ok), "https://gate.example.com/auth/callback", p.srv.Client()); err != nil {
		t.Fatalf("NewOIDC(valid): %v", err)
	}
	// Without the test CA the issuer is not trusted: NewOIDC succeeds (the
	// IdP is only needed to sign in) but no sign-in starts.
	cfg := resolvedSSO(ok)
	o, err := NewOIDC(ctx, e.d, cfg, "https://gate.example.com/auth/callback", nil)
	if err != nil {
		t.Fatalf("NewOIDC without the CA: %v", err)
	}
	if _, _, err := o.BeginLogin(e.ctx(), "/"); !errors.Is(err, ErrIdPUnavailable) {
		t.Errorf("BeginLogin with an untrusted issuer = %v, want ErrIdPUnavailable", err)
	}
	// With ca_roots it is.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pemCert(p.srv.Certificate().Raw), 0o600)
	cfg.CARoots = []string{caFile}
	if o, err = NewOIDC(ctx, e.d, cfg, "https://gate.example.com/auth/callback", nil); err != nil {
		t.Fatalf("NewOIDC with ca_roots: %v", err)
	}
	if _, _, err := o.BeginLogin(e.ctx(), "/"); err != nil {
		t.Errorf("BeginLogin with ca_roots: %v", err)
	}
}

// logBuffer collects log lines (and passes them on to t.Log).
type logBuffer struct {
	t  testing.TB
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.t.Log(string(p))
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// loginVia runs a whole login through p and fails the test if it does not
// succeed.
func loginVia(t *testing.T, e *env, o *OIDC, p *testIdP) {
	t.Helper()
	authURL, fc, err := o.BeginLogin(e.ctx(), "/")
	if err != nil {
		t.Fatalf("BeginLogin: %v", err)
	}
	state, code := p.authorize(t, authURL)
	if l, err := o.FinishLogin(e.ctx(), state, code, fc); err != nil || l.Email != "ann@example.com" {
		t.Fatalf("FinishLogin = %+v, %v", l, err)
	}
}

// TestOIDCIdPDown checks that the IdP is needed only to sign in: NewOIDC
// succeeds while discovery fails, sign-ins fail with ErrIdPUnavailable and
// retry at most every discoveryRetry, and once the IdP answers the same
// OIDC signs people in and keeps the discovery.
func TestOIDCIdPDown(t *testing.T) {
	e := newEnv(t)
	logs := &logBuffer{t: t}
	e.d.Logger = slog.New(slog.NewTextHandler(logs, nil))
	p := newTestIdP(t, e.clk)
	p.down.Store(true)
	o := newTestOIDC(t, e, p, "")
	if got := p.discoveries.Load(); got != 1 {
		t.Errorf("discoveries after NewOIDC = %d, want 1", got)
	}
	if l := logs.String(); !strings.Contains(l, "identity provider unreachable; sign-ins will fail until it answers") ||
		!strings.Contains(l, p.srv.URL) || strings.Contains(l, p.secret) {
		t.Errorf("start-up log = %q, want the warning with the issuer and without the secret", l)
	}

	// Within discoveryRetry of the failure nobody asks the IdP again, even
	// once it is back.
	for _, up := range []bool{false, true} {
		p.down.Store(!up)
		if _, _, err := o.BeginLogin(e.ctx(), "/"); !errors.Is(err, ErrIdPUnavailable) {
			t.Fatalf("BeginLogin (IdP up: %v) = %v, want ErrIdPUnavailable", up, err)
		}
		if _, err := o.FinishLogin(e.ctx(), "state", "code", "flow"); !errors.Is(err, ErrIdPUnavailable) {
			t.Fatalf("FinishLogin (IdP up: %v) = %v, want ErrIdPUnavailable", up, err)
		}
		e.clk.Advance(discoveryRetry/2 - time.Millisecond)
	}
	if got := p.discoveries.Load(); got != 1 {
		t.Errorf("discoveries within the retry interval = %d, want 1", got)
	}

	// A storm of sign-ins after the interval makes one attempt.
	p.down.Store(true)
	e.clk.Advance(2 * time.Millisecond) // discoveryRetry since the failure
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, _, err := o.BeginLogin(e.ctx(), "/"); !errors.Is(err, ErrIdPUnavailable) {
				t.Errorf("BeginLogin in a storm = %v, want ErrIdPUnavailable", err)
			}
		})
	}
	wg.Wait()
	if got := p.discoveries.Load(); got != 2 {
		t.Errorf("discoveries after a storm = %d, want 2", got)
	}

	// The IdP answers again: the next attempt discovers it and the login
	// works, without rebuilding anything.
	p.down.Store(false)
	e.clk.Advance(discoveryRetry)
	loginVia(t, e, o, p)
	if !strings.Contains(logs.String(), "Identity provider answers again") {
		t.Errorf("no recovery log line")
	}
	// The discovery is kept: a later outage of the discovery endpoint does
	// not stop sign-ins (the token endpoint still answers).
	p.down.Store(true)
	e.clk.Advance(time.Hour)
	loginVia(t, e, o, p)
	if got := p.discoveries.Load(); got != 3 {
		t.Errorf("discoveries after recovery = %d, want 3", got)
	}
}

// TestOIDCIdPNotListening starts OIDC against an address nobody listens
// on, then starts the IdP on that address.
func TestOIDCIdPNotListening(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte("s3cret"), 0o600)
	cfg := resolvedSSO(config.SSO{Issuer: "https://" + addr, ClientID: "gatehouse", ClientSecretFile: secretFile})
	// Every httptest TLS server has the same certificate, so another
	// server's client trusts the IdP started below.
	trust := httptest.NewTLSServer(http.NotFoundHandler())
	client := trust.Client()
	trust.Close()
	start := time.Now()
	o, err := NewOIDC(e.ctx(), e.d, cfg, "https://gate.example.com/auth/callback", client)
	if err != nil {
		t.Fatalf("NewOIDC with the IdP down: %v", err)
	}
	if d := time.Since(start); d > startDiscoveryTimeout+time.Second {
		t.Errorf("NewOIDC took %v", d)
	}
	if _, _, err := o.BeginLogin(e.ctx(), "/"); !errors.Is(err, ErrIdPUnavailable) {
		t.Fatalf("BeginLogin with the IdP down = %v, want ErrIdPUnavailable", err)
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	p := newTestIdPOn(t, e.clk, ln)
	if p.srv.URL != cfg.Issuer {
		t.Fatalf("IdP at %s, want %s", p.srv.URL, cfg.Issuer)
	}
	e.clk.Advance(discoveryRetry)
	loginVia(t, e, o, p)
}

// TestOIDCIssuerMismatch checks that a discovery document naming another
// issuer is refused (and retried later like an outage).
func TestOIDCIssuerMismatch(t *testing.T) {
	e := newEnv(t)
	p := newTestIdP(t, e.clk)
	p.wrongIssuer.Store(true)
	o := newTestOIDC(t, e, p, "")
	_, _, err := o.BeginLogin(e.ctx(), "/")
	var mismatch *oidc.IssuerMismatchError
	if !errors.Is(err, ErrIdPUnavailable) || !errors.As(err, &mismatch) {
		t.Fatalf("BeginLogin with a wrong issuer = %v, want ErrIdPUnavailable and an IssuerMismatchError", err)
	}
	p.wrongIssuer.Store(false)
	e.clk.Advance(discoveryRetry)
	loginVia(t, e, o, p)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
