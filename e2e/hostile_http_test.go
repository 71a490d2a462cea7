//lint:file-ignore SA1019 the hostile upstream must accept the h2c Upgrade (RFC 7540 3.2), which only x/net/http2/h2c implements; net/http's own unencrypted HTTP/2 speaks prior knowledge only.

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// hostileUpstream is a web app behind Gatehouse that records every request
// it receives (request URI and headers) and would speak HTTP/2 to anyone
// who upgrades with h2c: the kind of upstream that made issue 12's tunnel.
type hostileUpstream struct {
	URL  string
	mu   sync.Mutex
	seen []*http.Request
}

func startHostileUpstream(t *testing.T) *hostileUpstream {
	t.Helper()
	u := &hostileUpstream{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Clone(context.Background()))
		u.mu.Unlock()
		if r.URL.Path == "/ws" {
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
			if err != nil {
				return
			}
			defer c.CloseNow()
			typ, msg, err := c.Read(r.Context())
			if err == nil {
				_ = c.Write(r.Context(), typ, append([]byte("echo:"), msg...))
			}
			return
		}
		fmt.Fprintf(w, "proto=%s uri=%s\n", r.Proto, r.RequestURI)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h2c.NewHandler(h, &http2.Server{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	u.URL = "http://" + ln.Addr().String()
	return u
}

// take returns and forgets what the upstream has seen.
func (u *hostileUpstream) take() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.seen
	u.seen = nil
	return s
}

// hostileEnv is Gatehouse with one route (app.test, /admin only for ops)
// in front of a hostileUpstream, and ann (group eng) signed in through
// Dex and a virtual authenticator in real Chromium.
type hostileEnv struct {
	g                       *harness.Gatehouse
	up                      *hostileUpstream
	ca                      *harness.CA
	port, addr, portal, app string
	appCookie, portalCookie string
}

func startHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	ca := harness.NewCA(t)
	e := &hostileEnv{ca: ca, port: strconv.Itoa(harness.FreePort(t))}
	e.addr = "127.0.0.1:" + e.port
	e.portal = "https://gate.test:" + e.port
	e.app = "https://app.test:" + e.port
	dex := harness.StartDex(t, harness.DexOptions{
		CA:    ca,
		Users: []harness.DexUser{{Email: "ann@example.com", Password: "pw-ann", Groups: []string{"eng"}}},
		Clients: []harness.DexClient{{ID: "gatehouse", Secret: "gatehouse-secret-for-tests",
			RedirectURIs: []string{e.portal + "/auth/callback"}}},
	})
	e.up = startHostileUpstream(t)
	cert, key := ca.Issue(t, "gate.test", "app.test")
	e.g = harness.StartGatehouseYAML(t, fmt.Sprintf(`public_url: %s
listen:
  https: %q
tls: {mode: files, cert_file: %s, key_file: %s}
data_dir: /placeholder
sso:
  issuer: %s
  client_id: gatehouse
  client_secret_file: %s
  ca_roots: [%s]
routes:
  - name: app
    host: app.test
    upstream: %s
    allow: {groups: [eng]}
    paths:
      - {prefix: /admin, allow: {groups: [ops]}}
`, e.portal, e.addr, cert, key, dex.Issuer, dex.SecretFile(t, "gatehouse"), dex.CAFile, e.up.URL))
	tab := harness.NewBrowser(t, harness.BrowserOptions{CA: ca}).NewTab(t)
	tab.Navigate(e.app + "/p/start")
	tab.SignIn("ann@example.com", "pw-ann", e.app+"/p/start")
	tab.WaitText("uri=/p/start")
	e.appCookie, e.portalCookie = btCookie(tab, "app.test"), btCookie(tab, "gate.test")
	if e.appCookie == "" || e.portalCookie == "" {
		t.Fatalf("no session cookies after sign-in: app %q, portal %q", e.appCookie, e.portalCookie)
	}
	// The browser's own later requests (a favicon) must not be counted as
	// the suite's: close it before the suite starts.
	tab.Close()
	e.up.take()
	return e
}

// raw sends one request, byte for byte as written, over a fresh TLS
// connection to host (SNI and Host), and returns the response.
func (e *hostileEnv) raw(t *testing.T, host, request string) *http.Response {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", e.addr, &tls.Config{ServerName: host, RootCAs: e.ca.Pool(), NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("dial %s: %v", host, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", firstLine(request), err)
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	res.Body.Close()
	res.Body = io.NopCloser(strings.NewReader(string(body)))
	return res
}

func firstLine(s string) string { return strings.SplitN(s, "\r\n", 2)[0] }

// get builds a GET on the app host with ann's cookie and extra headers.
func (e *hostileEnv) get(target string, extra ...string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: app.test:" + e.port + "\r\nCookie: __Host-gatehouse=" + e.appCookie +
		"\r\n" + strings.Join(append(extra, ""), "\r\n") + "Connection: close\r\n\r\n"
}

// TestHostileHTTP is issue 12's standing adversarial suite for the HTTPS
// door, against the real binary: each hostile request asserts what the
// upstream saw (nothing, or exactly the canonical request) and, for
// refusals, that the audit log names them.
func TestHostileHTTP(t *testing.T) {
	e := startHostileEnv(t)

	t.Run("paths: refused or forwarded exactly as judged", func(t *testing.T) {
		for _, tc := range []struct {
			raw  string
			want string // "" = must not reach the upstream; else the RequestURI it must get
		}{
			{"/x/..;/admin", ""}, {"/admin%00", ""}, {"/admin%20", ""}, {"/admin%09", ""}, {"/admin.", ""},
			{"/admin%2f..%2fx", ""}, {"/admin%2e%2e%2f", ""}, {"/admin/%2e%2e/x", ""},
			{"/ADMIN", ""}, {"//admin", ""}, {"/x/../admin", ""}, {"/%61dmin", ""}, {"/admin", ""},
			{"/p/%61bc?q=1", "/p/abc?q=1"}, {"//p//x", "/p/x"}, {"/p/caf%C3%A9", "/p/caf%C3%A9"},
		} {
			res := e.raw(t, "app.test", e.get(tc.raw))
			seen := e.up.take()
			if tc.want == "" {
				if len(seen) != 0 {
					t.Errorf("%s: upstream got %q (status %d), want nothing", tc.raw, seen[0].RequestURI, res.StatusCode)
				}
				if res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusForbidden {
					t.Errorf("%s: status %d, want 400 or 403", tc.raw, res.StatusCode)
				}
				continue
			}
			if res.StatusCode != http.StatusOK || len(seen) != 1 || seen[0].RequestURI != tc.want {
				t.Errorf("%s: status %d, upstream saw %v, want exactly %q", tc.raw, res.StatusCode, uris(seen), tc.want)
			}
		}
		waitAudit(t, e.g, `"type":"http.refused".*path cannot be canonicalised`)
	})

	t.Run("h2c upgrade never reaches the upstream as an upgrade", func(t *testing.T) {
		res := e.raw(t, "app.test", e.get("/p/h2c", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"))
		seen := e.up.take()
		if res.StatusCode == http.StatusSwitchingProtocols {
			t.Fatalf("Gatehouse answered 101 to an h2c upgrade")
		}
		if len(seen) != 1 || seen[0].Proto != "HTTP/1.1" || seen[0].Header.Get("Upgrade") != "" || seen[0].Header.Get("Http2-Settings") != "" {
			t.Errorf("upstream saw %v with headers %v, want one plain HTTP/1.1 request", uris(seen), headersOf(seen))
		}
	})

	t.Run("identity and URL-override headers from the client never reach the upstream", func(t *testing.T) {
		res := e.raw(t, "app.test", e.get("/p/hdr", "Remote-User: root", "X-Webauth-User: root", "X-Forwarded-User: root",
			"X-Auth-Request-Email: root@example.com", "X-Original-Url: /admin", "X-Rewrite-Url: /admin", "X-Gatehouse-User: root@example.com"))
		seen := e.up.take()
		if res.StatusCode != http.StatusOK || len(seen) != 1 {
			t.Fatalf("status %d, upstream saw %v", res.StatusCode, uris(seen))
		}
		for _, h := range []string{"Remote-User", "X-Webauth-User", "X-Forwarded-User", "X-Auth-Request-Email", "X-Original-Url", "X-Rewrite-Url"} {
			if v := seen[0].Header.Get(h); v != "" {
				t.Errorf("upstream got %s: %q", h, v)
			}
		}
		if got := seen[0].Header.Get("X-Gatehouse-User"); got != "ann@example.com" {
			t.Errorf("upstream X-Gatehouse-User = %q, want Gatehouse's own", got)
		}
	})

	t.Run("WebSocket: own origin works, foreign origin refused", func(t *testing.T) {
		dial := func(origin string) (*websocket.Conn, *http.Response, error) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			return websocket.Dial(ctx, "wss://app.test:"+e.port+"/ws", &websocket.DialOptions{
				HTTPClient: e.client(nil),
				HTTPHeader: http.Header{"Cookie": {"__Host-gatehouse=" + e.appCookie}, "Origin": {origin}},
			})
		}
		c, res, err := dial(e.app)
		if err != nil {
			t.Fatalf("own origin: %v (%v)", err, res)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.Read(ctx); err != nil || string(msg) != "echo:hi" {
			t.Errorf("echo = %q, %v", msg, err)
		}
		c.CloseNow()
		e.up.take()
		for _, origin := range []string{"https://evil.example", "https://gate.test:" + e.port, "null"} {
			_, res, err := dial(origin)
			if err == nil || res == nil || res.StatusCode != http.StatusForbidden {
				t.Errorf("origin %s: err %v, response %v; want 403", origin, err, res)
			}
		}
		if seen := e.up.take(); len(seen) != 0 {
			t.Errorf("foreign-origin WebSockets reached the upstream: %v", uris(seen))
		}
		waitAudit(t, e.g, `"type":"http.refused".*websocket origin not allowed`)
	})

	t.Run("rd to the portal host with a double slash ends on the portal's home", func(t *testing.T) {
		for _, rd := range []string{e.portal + "//evil.com", e.app + "//evil.com", "//evil.com", "/\\evil.com", "https://evil.com/"} {
			res := e.raw(t, "gate.test", "GET /auth/login?rd="+url.QueryEscape(rd)+" HTTP/1.1\r\nHost: gate.test:"+e.port+
				"\r\nCookie: __Host-gatehouse="+e.portalCookie+"\r\nConnection: close\r\n\r\n")
			loc := res.Header.Get("Location")
			if res.StatusCode >= 500 {
				t.Errorf("rd=%s: status %d", rd, res.StatusCode)
			}
			if strings.Contains(strings.ToLower(loc), "evil.com") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
				t.Errorf("rd=%s: Location %q", rd, loc)
			}
			if res.StatusCode/100 == 3 && loc != "/" && loc != e.portal+"/" {
				t.Errorf("rd=%s: status %d Location %q, want the portal's home", rd, res.StatusCode, loc)
			}
		}
	})

	t.Run("a handoff URL opened in a second browser does not sign it in", func(t *testing.T) {
		// Browser A: signed in at the portal; its trip to the app starts on
		// the app host (trip cookie) and comes back with a handoff URL.
		jarA := e.jar(t, map[string]string{"gate.test": e.portalCookie})
		a := e.client(jarA)
		res := do(t, a, e.app+"/p/handoff")
		for i := 0; i < 5 && res.StatusCode/100 == 3 && !strings.Contains(res.Header.Get("Location"), "/.gatehouse/handoff"); i++ {
			res = do(t, a, resolve(res))
		}
		handoff := resolve(res)
		if !strings.Contains(handoff, "/.gatehouse/handoff") {
			t.Fatalf("browser A's trip ended at %d %q, want a handoff URL", res.StatusCode, handoff)
		}
		// Browser B (the victim of a login CSRF) opens it.
		jarB := e.jar(t, nil)
		b := e.client(jarB)
		res = do(t, b, handoff)
		for _, c := range jarB.Cookies(mustURL(e.app)) {
			if c.Name == "__Host-gatehouse" {
				t.Fatalf("browser B got an app session from A's handoff (status %d)", res.StatusCode)
			}
		}
		if res.StatusCode == http.StatusOK {
			t.Errorf("browser B: status 200 for A's handoff URL")
		}
		if seen := e.up.take(); len(seen) != 0 {
			t.Errorf("upstream saw %v through the stolen handoff", uris(seen))
		}
	})

	t.Run("2,000 slow-body clients do not keep a person on another address out", func(t *testing.T) {
		// First every slow client connects and holds its connection (only
		// the per-source cap's worth get one); then each sends a request
		// with a large body and only its first byte. Gatehouse answers the
		// unauthenticated request without reading the body and closes the
		// connection at once instead of waiting for the rest.
		const slow = 2000
		var wg sync.WaitGroup
		conns := make(chan net.Conn, slow)
		sem := make(chan struct{}, 64)
		for i := 0; i < slow; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
				c, err := tls.DialWithDialer(d, "tcp", e.addr, &tls.Config{ServerName: "app.test", RootCAs: e.ca.Pool(), NextProtos: []string{"http/1.1"}})
				if err != nil {
					return // refused at accept: the cap at work
				}
				conns <- c
			}()
		}
		wg.Wait()
		close(conns)
		var held []net.Conn
		for c := range conns {
			held = append(held, c)
		}
		t.Cleanup(func() {
			for _, c := range held {
				c.Close()
			}
		})
		t.Logf("slow clients: %d of %d got a TLS connection", len(held), slow)
		if len(held) > 300 {
			t.Errorf("%d connections from one address held, want at most the per-source cap", len(held))
		}
		refused := metricValue(t, "http://"+e.g.AdminAddr+"/metrics", `gatehouse_https_conn_refused_total{reason="per_source"}`)
		if refused < float64(slow-len(held)) || refused == 0 {
			t.Errorf("per_source refusals in /metrics = %v, want at least %d", refused, slow-len(held))
		}
		for _, c := range held {
			fmt.Fprintf(c, "POST /p/upload HTTP/1.1\r\nHost: app.test:%s\r\nContent-Length: 1000000\r\n\r\nx", e.port)
		}
		// Each is answered and closed without waiting for its body.
		lingering := 0
		deadline := time.Now().Add(5 * time.Second)
		for _, c := range held {
			_ = c.SetReadDeadline(deadline)
			if _, err := io.Copy(io.Discard, c); err != nil {
				lingering++
			}
		}
		if lingering > 0 {
			t.Errorf("%d of %d slow-body connections still open 5s after their headers", lingering, len(held))
		}

		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		person := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, e.addr)
			},
			TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool()},
		}}
		req, _ := http.NewRequest("GET", e.app+"/p/person", nil)
		req.Header.Set("Cookie", "__Host-gatehouse="+e.appCookie)
		start := time.Now()
		res, err := person.Do(req)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("the person on 127.0.0.2: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK || took > 2*time.Second {
			t.Errorf("the person on 127.0.0.2: status %d after %v, want 200 within 2s", res.StatusCode, took)
		}
	})
}

// client is an HTTPS client that reaches every test host on Gatehouse's
// port, trusts the test CA and does not follow redirects.
func (e *hostileEnv) client(jar http.CookieJar) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Jar:     jar,
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

// jar is a cookie jar holding the given session cookies (host → value).
func (e *hostileEnv) jar(t *testing.T, sessions map[string]string) *cookiejar.Jar {
	t.Helper()
	j, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for host, v := range sessions {
		j.SetCookies(mustURL("https://"+host+":"+e.port+"/"), []*http.Cookie{{Name: "__Host-gatehouse", Value: v, Path: "/", Secure: true}})
	}
	return j
}

func do(t *testing.T, c *http.Client, rawURL string) *http.Response {
	t.Helper()
	res, err := c.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// resolve is the absolute URL of res's Location.
func resolve(res *http.Response) string {
	loc, err := res.Location()
	if err != nil {
		return ""
	}
	return loc.String()
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func uris(rs []*http.Request) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.RequestURI)
	}
	return out
}

func headersOf(rs []*http.Request) []http.Header {
	var out []http.Header
	for _, r := range rs {
		out = append(out, r.Header)
	}
	return out
}
