package portal

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/assertion"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/internal/testlog"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
	"github.com/gatehouse-dev/gatehouse/store"
)

// ptAudit records audit events for assertions.
type ptAudit struct{ audittest.Recorder }

// find returns the recorded events of type typ with decision dec.
func (a *ptAudit) find(typ, dec string) []audit.Event {
	return a.Find(func(e audit.Event) bool { return e.Type == typ && (dec == "" || e.Decision == dec) })
}

// ptEnv is a portal and its app gates over real identity components, a
// real store, real upstream proxies and an echoing upstream, served over
// TLS on loopback for every host name.
type ptEnv struct {
	t         testing.TB
	cfg       *config.Config
	st        *store.Bolt
	audit     *ptAudit
	oidc      *ptOIDC
	deps      identity.Deps
	codec     *identity.Codec
	sessions  *identity.Sessions
	portal    *Portal
	limiter   *identity.Limiter
	apps      map[string]*App
	srv       *httptest.Server
	upHits    *ptCounter
	clock     *ptClock
	webauthn  *identity.WebAuthn
	approvals *identity.Approvals
	invites   *identity.Invites
	// lastAssertion is the last assertion response sent, for replays.
	lastAssertion string
}

type ptCounter struct {
	mu sync.Mutex
	n  int
}

func (c *ptCounter) add() { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *ptCounter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// ptEcho is the upstream: it answers with what it received as JSON.
type ptEcho struct {
	Method  string              `json:"method"`
	URI     string              `json:"uri"`
	Headers map[string][]string `json:"headers"`
}

func ptConfig(upstream string) *config.Config {
	return &config.Config{
		PublicURL: "https://gate.test",
		MFA:       config.MFA{MaxAge: config.Duration(12 * time.Hour)},
		Routes: []config.Route{
			{Name: "app", Host: "app.test", Upstream: upstream, Allow: config.Allow{Groups: []string{"eng"}}},
			{Name: "other", Host: "other.test", Upstream: upstream, Allow: config.Allow{Groups: []string{"ops"}}},
			{Name: "fresh", Host: "fresh.test", Upstream: upstream, Allow: config.Allow{Groups: []string{"eng"}},
				MFAMaxAge: config.Duration(time.Minute)},
			// flash's rule is shorter than a trip through the portal: a
			// step-up loop (TestStepUpLoopShowsTheRule).
			{Name: "flash", Host: "flash.test", Upstream: upstream, Allow: config.Allow{Groups: []string{"eng"}},
				MFAMaxAge: config.Duration(10 * time.Second)},
		},
		Admins: config.Allow{Groups: []string{"security"}, Emails: []string{"root@example.com"}},
	}
}

// ptOptions vary the environment.
type ptOptions struct {
	enrollment string        // webauthn.enrollment
	cacheTTL   time.Duration // app gates' session cache; zero: off
	quiet      bool          // discard logs (fuzzing: no t.Log from handlers)
}

// ptClock is a settable clock shared by identity, the portal and the app
// gates, starting at the real time.
type ptClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *ptClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *ptClock) Advance(d time.Duration) { c.mu.Lock(); c.off += d; c.mu.Unlock() }

func newPTEnv(t testing.TB) *ptEnv { return newPTEnvWith(t, ptOptions{}) }

func newPTEnvWith(t testing.TB, opt ptOptions) *ptEnv {
	t.Helper()
	logger := testlog.New(t)
	if opt.quiet {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &ptEnv{t: t, audit: &ptAudit{}, oidc: &ptOIDC{}, apps: map[string]*App{}, upHits: &ptCounter{}, clock: &ptClock{}}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.upHits.add()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ptEcho{Method: r.Method, URI: r.RequestURI, Headers: r.Header})
	}))
	t.Cleanup(up.Close)
	e.cfg = ptConfig(up.URL)
	e.cfg.WebAuthn.Enrollment = opt.enrollment
	e.cfg.ApplyDefaults() // as config.Load does: the doors take defaults resolved

	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st
	ctx := context.Background()
	e.deps = identity.Deps{Store: st, Audit: e.audit, Logger: logger, Now: e.clock.Now, Secrets: secretstest.Shared(t)}
	if e.codec, err = identity.NewCodec(ctx, e.deps, 0); err != nil {
		t.Fatal(err)
	}
	if e.sessions, err = identity.NewSessions(e.deps, identity.SessionOptions{}); err != nil {
		t.Fatal(err)
	}
	lim, err := identity.NewLimiter(e.deps)
	if err != nil {
		t.Fatal(err)
	}
	// Tests make many requests from one address; TestPortalRateLimits
	// checks the limiter with its defaults.
	lim.PerSource = identity.Limit{N: 10000, Window: time.Minute}
	lim.PerUser = identity.Limit{N: 10000, Window: time.Minute}
	e.limiter = lim
	users, err := identity.NewUsers(e.deps)
	if err != nil {
		t.Fatal(err)
	}
	if e.invites, err = identity.NewInvites(e.deps); err != nil {
		t.Fatal(err)
	}
	e.webauthn, err = identity.NewWebAuthn(e.deps, identity.WebAuthnConfig{PublicURL: e.cfg.PublicURL, Enrollment: e.cfg.WebAuthn.Enrollment},
		users, e.sessions, e.invites)
	if err != nil {
		t.Fatal(err)
	}
	if e.approvals, err = identity.NewApprovals(e.deps, e.cfg.PublicURL); err != nil {
		t.Fatal(err)
	}
	signer, err := assertion.NewSigner(ctx, assertion.Config{Store: st, Secrets: e.deps.Secrets, Issuer: e.cfg.PublicURL, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.portal, err = NewPortal(PortalConfig{
		Config: e.cfg, OIDC: e.oidc, Sessions: e.sessions, WebAuthn: e.webauthn, Approvals: e.approvals, Limiter: lim,
		Codec: e.codec, Audit: e.audit, JWKS: signer.JWKS(), Logger: logger, Now: e.clock.Now,
		Revoked: func(handle, email string) {
			for _, a := range e.apps {
				a.Forget(handle, email)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cacheTTL := opt.cacheTTL
	if cacheTTL == 0 {
		cacheTTL = -1
	}
	for _, rt := range e.cfg.Routes {
		u, err := proxy.NewUpstream(rt, signer, logger)
		if err != nil {
			t.Fatal(err)
		}
		a, err := NewApp(rt, u, AppDeps{Config: e.cfg, Codec: e.codec, Sessions: e.sessions, Audit: e.audit,
			Logger: logger, CacheTTL: cacheTTL, Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		e.apps[rt.Host] = a
	}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := strings.ToLower(r.Host)
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = strings.ToLower(h)
		}
		if host == "gate.test" {
			proxy.SecurityHeaders(e.portal).ServeHTTP(w, r)
			return
		}
		if a := e.apps[host]; a != nil {
			a.ServeHTTP(w, r)
			return
		}
		http.Error(w, "unknown host", http.StatusMisdirectedRequest)
	}))
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	return e
}

// client returns a browser-like client: a cookie jar, every host name
// dialled to the test server, redirects not followed.
func (e *ptEnv) client() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	addr := e.srv.Listener.Addr().String()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // test server's own certificate
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Jar:           jar,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

// ptResp is a response with its body read.
type ptResp struct {
	*http.Response
	body string
}

func (e *ptEnv) do(c *http.Client, method, rawURL string, body io.Reader, hdr map[string]string) ptResp {
	e.t.Helper()
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return ptResp{Response: res, body: string(b)}
}

func (e *ptEnv) get(c *http.Client, rawURL string) ptResp {
	e.t.Helper()
	return e.do(c, http.MethodGet, rawURL, nil, nil)
}

// postForm posts form values from the portal's origin.
func (e *ptEnv) postForm(c *http.Client, rawURL string, v url.Values, origin string) ptResp {
	e.t.Helper()
	hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	if origin != "" {
		hdr["Origin"] = origin
	}
	return e.do(c, http.MethodPost, rawURL, strings.NewReader(v.Encode()), hdr)
}

// cookie returns the value of the session cookie the client holds for
// host, or "".
func (e *ptEnv) cookie(c *http.Client, host string) string { return jarCookie(c, host, SessionCookie) }

// tripBinding returns the binding of the trip nonce the client holds for
// host, or "" when it holds none.
func (e *ptEnv) tripBinding(c *http.Client, host string) string {
	if n := jarCookie(c, host, tripCookie); n != "" {
		return identity.HandoffBinding(n)
	}
	return ""
}

// jarCookie returns the value of the cookie name the client holds for
// host, or "".
func jarCookie(c *http.Client, host, name string) string {
	for _, ck := range c.Jar.Cookies(&url.URL{Scheme: "https", Host: host, Path: "/"}) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// signIn runs the (fake) SSO part of a login for email in groups, starting
// at startURL (an app URL or a portal URL), and returns the last response:
// the redirect to the security key step.
func (e *ptEnv) signIn(c *http.Client, startURL, email string, groups ...string) ptResp {
	e.t.Helper()
	res := e.get(c, startURL)
	for i := 0; i < 3 && res.StatusCode == http.StatusFound && !strings.HasPrefix(res.Header.Get("Location"), "https://idp.test/"); i++ {
		res = e.get(c, ptAbs(res.Request.URL, res.Header.Get("Location")))
	}
	loc := res.Header.Get("Location")
	if !strings.HasPrefix(loc, "https://idp.test/auth?state=") {
		e.t.Fatalf("sign-in from %s: got %d to %q, want a redirect to the IdP", startURL, res.StatusCode, loc)
	}
	state := strings.TrimPrefix(loc, "https://idp.test/auth?state=")
	code := "ok:" + email + ":" + strings.Join(groups, ",")
	return e.get(c, "https://gate.test/auth/callback?state="+url.QueryEscape(state)+"&code="+url.QueryEscape(code))
}

// ptAbs resolves a Location against the request URL.
func ptAbs(base *url.URL, loc string) string {
	u, err := base.Parse(loc)
	if err != nil {
		return loc
	}
	return u.String()
}

// sessionID returns the session ID sealed in the client's portal cookie.
func (e *ptEnv) sessionID(c *http.Client) string {
	e.t.Helper()
	v := e.cookie(c, "gate.test")
	if v == "" {
		e.t.Fatal("no portal session cookie")
	}
	id, err := e.codec.Open(SessionCookie, "gate.test", v)
	if err != nil {
		e.t.Fatalf("open portal cookie: %v", err)
	}
	return id
}
