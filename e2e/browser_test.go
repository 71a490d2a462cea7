package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// btEnv is the browser-access setup: Dex, the test upstream, the real
// gatehouse binary and Chromium, all on loopback.
type btEnv struct {
	port     string // Gatehouse's HTTPS port
	portal   string // https://gate.test:PORT
	ca       *harness.CA
	g        *harness.Gatehouse
	up       *btUpstream
	browser  *harness.Browser
	addr     string // 127.0.0.1:PORT
	freshAge time.Duration
}

func (e *btEnv) url(host, pathQuery string) string {
	return "https://" + host + ":" + e.port + pathQuery
}

func startBTEnv(t *testing.T) *btEnv {
	t.Helper()
	ca := harness.NewCA(t)
	e := &btEnv{ca: ca, port: strconv.Itoa(harness.FreePort(t)), freshAge: 5 * time.Second}
	e.addr = "127.0.0.1:" + e.port
	e.portal = "https://gate.test:" + e.port
	dex := harness.StartDex(t, harness.DexOptions{
		CA: ca,
		Users: []harness.DexUser{
			{Email: "ann@example.com", Password: "pw-ann", Groups: []string{"eng"}},
			{Email: "bob@example.com", Password: "pw-bob", Groups: []string{"sales"}},
		},
		Clients: []harness.DexClient{{ID: "gatehouse", Secret: "gatehouse-secret-for-tests",
			RedirectURIs: []string{e.portal + "/auth/callback"}}},
	})
	e.up = startBTUpstream(t, e.portal, e.addr, ca, "app", "other", "fresh")
	cert, key := ca.Issue(t, "gate.test", "app.test", "other.test", "fresh.test")
	cfg := fmt.Sprintf(`public_url: %s
listen:
  https: %q
  admin: "127.0.0.1:0"
tls:
  mode: files
  cert_file: %s
  key_file: %s
data_dir: /placeholder
sso:
  issuer: %s
  client_id: gatehouse
  client_secret_file: %s
  ca_roots: [%s]
mfa:
  max_age: 12h
routes:
  - name: app
    host: app.test
    upstream: %s
    allow: {groups: [eng]}
  - name: other
    host: other.test
    upstream: %s
    allow: {groups: [ops]}
  - name: fresh
    host: fresh.test
    upstream: %s
    allow: {groups: [eng]}
    mfa_max_age: %s
admins: {groups: [security]}
`, e.portal, e.addr, cert, key, dex.Issuer, dex.SecretFile(t, "gatehouse"), dex.CAFile, e.up.URL, e.up.URL, e.up.URL, e.freshAge)
	e.g = harness.StartGatehouseYAML(t, cfg)
	// The browser trusts the CA, which issued Gatehouse's and Dex's
	// certificates before this point.
	e.browser = harness.NewBrowser(t, harness.BrowserOptions{CA: ca})
	return e
}

// client is a Go HTTPS client that reaches every test host name on
// Gatehouse's port, trusts the test CA and does not follow redirects.
func (e *btEnv) client() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, e.addr)
			},
			TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool()},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// cookie returns the value of the session cookie the tab holds for host.
func btCookie(tab *harness.Tab, host string) string {
	for _, c := range tab.Cookies() {
		if c.Name == "__Host-gatehouse" && c.Domain == host {
			return c.Value
		}
	}
	return ""
}

// signIn starts at rawURL in tab, signs in at Dex and completes the
// security key step (enrolment or assertion, whichever the page shows,
// checked against wantMode), then waits to land on wantURL.
func (e *btEnv) signIn(t *testing.T, tab *harness.Tab, rawURL, email, password, wantMode, wantURL string) {
	t.Helper()
	tab.Navigate(rawURL)
	tab.WaitURL("Dex's login page", func(u string) bool { return strings.Contains(u, "/dex/") })
	tab.DexLogin(email, password)
	tab.WaitURLPrefix(e.portal + "/auth/verify")
	tab.Do(chromedp.WaitVisible(chromedp.CSS("#webauthn-start")))
	ctx, cancel := context.WithTimeout(tab.Ctx, 10*time.Second)
	defer cancel()
	attr, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#webauthn"), "data-mode"))
	if err != nil {
		tab.Fatalf("read the ceremony mode: %v", err)
	}
	if mode := attr.Value; mode != wantMode {
		tab.Fatalf("security key step is %q, want %q", attr.Value, wantMode)
	}
	tab.Click("#webauthn-start")
	tab.WaitURLPrefix(wantURL)
}

// waitStepUpDue polls rawURL, an app URL on a route with a short
// mfa_max_age, until Gatehouse sends the person holding portalCookie to the
// step-up page. A Go client with its own cookie jar makes the same trip a
// browser would (app host, portal, handoff) with that portal session, so the
// browser's own cookies and trip are left as they were.
func (e *btEnv) waitStepUpDue(t *testing.T, portalCookie, rawURL string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	portal, _ := url.Parse(e.portal + "/")
	jar.SetCookies(portal, []*http.Cookie{{Name: "__Host-gatehouse", Value: portalCookie, Path: "/", Secure: true}})
	c := e.client()
	c.Jar = jar
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == "/auth/stepup" || len(via) > 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}
	deadline := time.Now().Add(e.freshAge + 10*time.Second)
	for ; ; time.Sleep(200 * time.Millisecond) {
		res, err := c.Get(rawURL)
		if err != nil {
			t.Fatalf("poll %s: %v", rawURL, err)
		}
		res.Body.Close()
		loc := res.Header.Get("Location")
		switch {
		case res.StatusCode == http.StatusFound && strings.HasPrefix(loc, e.portal+"/auth/stepup?"):
			return
		case res.StatusCode != http.StatusOK:
			t.Fatalf("poll %s = %d (Location %q), want 200 until a redirect to the step-up", rawURL, res.StatusCode, loc)
		case time.Now().After(deadline):
			t.Fatalf("%s still admits the session %v after its mfa_max_age (%v)", rawURL, e.freshAge+10*time.Second, e.freshAge)
		}
	}
}

// step runs one stage of a test whose stages build on each other. Stages
// are not subtests: the tabs belong to the whole test, and a failed stage
// leaves nothing for the next one to build on.
func step(t *testing.T, name string, f func()) {
	t.Helper()
	t.Logf("=== step: %s", name)
	f()
}

// TestBrowserAccess is issue 3's acceptance test: real Dex, real Chromium
// with a virtual authenticator, the real gatehouse binary, and an upstream
// that verifies every JWT assertion against the published JWKS.
func TestBrowserAccess(t *testing.T) {
	e := startBTEnv(t)
	app := e.url("app.test", "/dash/x?a=1&b=two%20words")

	// First login: Dex, then enrolment of the virtual security key, then
	// back at the exact URL asked for.
	tab := e.browser.NewTab(t)
	step(t, "first login enrols", func() {
		e.signIn(t, tab, app, "ann@example.com", "pw-ann", "enroll", app)
		tab.WaitText("assertion=verified")
		text := tab.Text()
		for _, w := range []string{"user=ann@example.com", "groups=eng", "aud=app", "uri=/dash/x?a=1&b=two%20words"} {
			if !strings.Contains(text, w) {
				tab.Fatalf("upstream page lacks %q", w)
			}
		}
		seen, bad := e.up.last()
		if len(bad) > 0 {
			t.Errorf("upstream refused assertions: %q", bad)
		}
		if strings.Contains(seen.Cookie, "gatehouse") {
			t.Errorf("upstream received Gatehouse's cookie: %q", seen.Cookie)
		}
	})

	// Second login: a fresh browser context (no cookies) with the same key.
	tab2 := e.browser.NewContext(t)
	step(t, "second login asserts", func() {
		again := e.url("app.test", "/again?q=%C3%A9&x=1")
		e.signIn(t, tab2, again, "ann@example.com", "pw-ann", "assert", again)
		tab2.WaitText("uri=/again?q=%C3%A9&x=1")
	})

	step(t, "client identity headers are replaced", func() {
		c := e.client()
		req, _ := http.NewRequest(http.MethodGet, e.url("app.test", "/h"), nil)
		req.Header.Set("Cookie", "__Host-gatehouse="+btCookie(tab2, "app.test"))
		req.Header.Set("X-Gatehouse-User", "mallory@example.com")
		req.Header.Set("X-Gatehouse-Groups", "security")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		seen, ok := e.up.seenAt("/h")
		if res.StatusCode != http.StatusOK || !ok || seen.User != "ann@example.com" || seen.Groups != "eng" {
			t.Errorf("forged headers: status %d, upstream saw %+v (found %v)", res.StatusCode, seen, ok)
		}
	})

	step(t, "websocket echo through the proxy", func() {
		// From the upstream's page, as a browser app does.
		js := `new Promise((resolve) => {
			const ws = new WebSocket("wss://" + location.host + "/ws");
			ws.onopen = () => ws.send("hello from the page");
			ws.onmessage = (m) => { resolve(String(m.data)); ws.close(); };
			ws.onerror = () => resolve("error");
			setTimeout(() => resolve("timeout"), 10000);
		})`
		ctx, cancel := context.WithTimeout(tab2.Ctx, 20*time.Second)
		defer cancel()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			tab2.Fatalf("page WebSocket: %v", err)
		}
		if got != "echo:hello from the page" {
			t.Errorf("page WebSocket got %q", got)
		}
		// From Go with the browser's app cookie.
		conn, res, err := websocket.Dial(ctx, "wss://app.test:"+e.port+"/ws", &websocket.DialOptions{
			HTTPClient: e.client(),
			HTTPHeader: http.Header{"Cookie": {"__Host-gatehouse=" + btCookie(tab2, "app.test")}, "Origin": {e.url("app.test", "")}},
		})
		if err != nil {
			t.Fatalf("websocket dial: %v (%v)", err, res)
		}
		defer conn.CloseNow()
		if err := conn.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		_, msg, err := conn.Read(ctx)
		if err != nil || string(msg) != "echo:ping" {
			t.Errorf("Go WebSocket read %q, %v", msg, err)
		}
		conn.Close(websocket.StatusNormalClosure, "")
	})

	step(t, "step-up when MFA is stale", func() {
		report := e.url("fresh.test", "/report?week=4")
		// The real binary's clock cannot be moved, so wait until the
		// route's mfa_max_age has run out for this session as Gatehouse
		// sees it, without touching the tab's own trip to fresh.test.
		e.waitStepUpDue(t, btCookie(tab2, "gate.test"), report)
		tab2.Navigate(report)
		tab2.WaitURLPrefix(e.portal + "/auth/stepup?rd=")
		tab2.WaitText("Confirm it is you")
		tab2.Click("#webauthn-start")
		tab2.WaitURLPrefix(report)
		tab2.WaitText("aud=fresh")
		tab2.WaitText("uri=/report?week=4")
	})

	step(t, "route denied outside its group", func() {
		// A second Dex user, not in eng.
		tab3 := e.browser.NewContext(t)
		tab3.Navigate(app)
		tab3.WaitURL("Dex's login page", func(u string) bool { return strings.Contains(u, "/dex/") })
		tab3.DexLogin("bob@example.com", "pw-bob")
		tab3.WaitURLPrefix(e.portal + "/auth/verify")
		tab3.Click("#webauthn-start")
		tab3.WaitURLPrefix(app)
		tab3.WaitText("Access denied")
		text := tab3.Text()
		for _, w := range []string{"route:app", "group eng required", "members of the group security", "Request ID"} {
			if !strings.Contains(text, w) {
				tab3.Fatalf("denied page lacks %q", w)
			}
		}
		// The same person in ann's group reaches it; bob's request never did.
		seen, _ := e.up.last()
		if seen.User == "bob@example.com" {
			t.Errorf("upstream saw bob's request")
		}
	})

	step(t, "sign-out ends the session", func() {
		appCookie := btCookie(tab2, "app.test")
		portalCookie := btCookie(tab2, "gate.test")
		if appCookie == "" || portalCookie == "" {
			t.Fatalf("tab has no session cookies (app %t, portal %t)", appCookie != "", portalCookie != "")
		}
		c := e.client()
		get := func(rawURL, cookie string) *http.Response {
			req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
			req.Header.Set("Cookie", "__Host-gatehouse="+cookie)
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return res
		}
		if res := get(e.url("app.test", "/before"), appCookie); res.StatusCode != http.StatusOK {
			t.Fatalf("app cookie before sign-out = %d, want 200", res.StatusCode)
		}
		tab2.Navigate(e.portal + "/")
		tab2.WaitText("Your apps")
		tab2.Click(`form[action="/auth/logout"] button`)
		tab2.WaitText("You are signed out.")
		// The app's cache trusts a cookie for at most a second: poll
		// until the old cookie is refused, for at most 1.5s.
		var res *http.Response
		for deadline := time.Now().Add(1500 * time.Millisecond); ; time.Sleep(50 * time.Millisecond) {
			res = get(e.url("app.test", "/after"), appCookie)
			if res.StatusCode != http.StatusOK || time.Now().After(deadline) {
				break
			}
		}
		if loc := res.Header.Get("Location"); res.StatusCode != http.StatusFound || !strings.HasPrefix(loc, e.portal+"/auth/login?rd=") {
			t.Errorf("old app cookie 1.5s after sign-out = %d to %q, want a redirect to the login", res.StatusCode, loc)
		}
		res = get(e.portal+"/keys/add", portalCookie)
		if loc := res.Header.Get("Location"); res.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/auth/login") {
			t.Errorf("old portal cookie after sign-out = %d to %q, want a redirect to the login", res.StatusCode, loc)
		}
		// And in the browser: the app asks for a sign-in again.
		tab2.Navigate(e.url("app.test", "/after"))
		tab2.WaitURL("Dex's login page", func(u string) bool { return strings.Contains(u, "/dex/") })
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, res2, err := websocket.Dial(ctx, "wss://app.test:"+e.port+"/ws", &websocket.DialOptions{
			HTTPClient: e.client(),
			// The app's own Origin, as the browser sends it: the front refuses
			// any other (or none) before the gate looks at the cookie.
			HTTPHeader: http.Header{"Cookie": {"__Host-gatehouse=" + appCookie}, "Origin": {e.url("app.test", "")}},
		})
		if err == nil || res2 == nil || res2.StatusCode != http.StatusFound {
			t.Errorf("WebSocket with the old cookie: err %v, response %v; want a redirect", err, res2)
		}
	})

	_, bad := e.up.last()
	if len(bad) > 0 {
		t.Errorf("upstream refused assertions: %q", bad)
	}
}
