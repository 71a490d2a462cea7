package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gatehouse-dev/gatehouse/assertion"
	"github.com/gatehouse-dev/gatehouse/assertion/assertiontest"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/google/go-cmp/cmp"
)

var upAlice = authz.Subject{Email: "alice@example.com", Groups: []string{"eng", "sre"}, MFAAt: time.Now().Add(-time.Minute)}

// upFixture is a proxy for one route in front of an upstream handler.
type upFixture struct {
	upstream *httptest.Server
	proxy    *httptest.Server
	u        *Upstream
	signer   *assertion.Signer
	ws       *wsGuard
}

func upStart(t *testing.T, upstreamPath string, timeout time.Duration, h http.Handler) *upFixture {
	t.Helper()
	f := &upFixture{upstream: httptest.NewServer(h)}
	t.Cleanup(f.upstream.Close)
	f.signer = upSigner(t, upBolt(t), time.Now)
	// A zero timeout gets config's default, resolved the way Load does.
	cfg := config.Config{Routes: []config.Route{
		{Name: "app", Host: "app.example.test", Upstream: f.upstream.URL + upstreamPath, Timeout: config.Duration(timeout)}}}
	cfg.ApplyDefaults()
	route := cfg.Routes[0]
	var err error
	f.u, err = NewUpstream(route, f.signer, upTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	// The front admits WebSockets (Origin, caps) through this guard.
	f.ws = newWSGuard(2, 100, nil)
	f.proxy = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.u.Serve(w, r.WithContext(withWSGuard(r.Context(), f.ws)), upAlice)
	}))
	t.Cleanup(f.proxy.Close)
	return f
}

// upSeen records what the upstream received.
type upSeen struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (s *upSeen) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

func (s *upSeen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

func (s *upSeen) last(t *testing.T) *http.Request {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("upstream received nothing")
	}
	return s.reqs[len(s.reqs)-1]
}

func (f *upFixture) do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	c := f.proxy.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestUpstreamIdentityHeaders(t *testing.T) {
	seen := &upSeen{}
	f := upStart(t, "", 0, seen)
	req, _ := http.NewRequest(http.MethodGet, f.proxy.URL+"/dash", nil)
	// Every spelling a client might use to smuggle an identity or a path.
	req.Header["X-Gatehouse-User"] = []string{"mallory@example.com"}
	req.Header["x-gatehouse-user"] = []string{"mallory@example.com"}
	req.Header["X_Gatehouse_User"] = []string{"mallory@example.com"}
	req.Header["X-GATEHOUSE-GROUPS"] = []string{"admins"}
	req.Header["X-Gatehouse-Jwt-Assertion"] = []string{"forged"}
	req.Header["X-Gatehouse-Anything"] = []string{"x"}
	req.Header["X-Forwarded-For"] = []string{"6.6.6.6"}
	req.Header["X_Forwarded_For"] = []string{"6.6.6.6"}
	req.Header["X-Forwarded-Host"] = []string{"evil.example"}
	req.Header["X-Forwarded-Prefix"] = []string{"/evil"}
	req.Header["Forwarded"] = []string{"for=6.6.6.6"}
	req.Header["X-Real-Ip"] = []string{"6.6.6.6"}
	req.Header["Connection"] = []string{"X-Gatehouse-User"}
	req.Header.Set("X-App-Header", "kept")
	res, _ := f.do(t, req)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	in := seen.last(t)
	got := map[string][]string{}
	for k, v := range in.Header {
		if k != "Accept-Encoding" && k != "User-Agent" && k != HeaderAssertion {
			got[k] = v
		}
	}
	want := map[string][]string{
		"X-Gatehouse-User":   {"alice@example.com"},
		"X-Gatehouse-Email":  {"alice@example.com"},
		"X-Gatehouse-Groups": {"eng,sre"},
		"X-Forwarded-For":    {"127.0.0.1"},
		"X-Forwarded-Host":   {strings.TrimPrefix(f.proxy.URL, "https://")},
		"X-Forwarded-Proto":  {"https"},
		"X-App-Header":       {"kept"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("upstream headers mismatch (-want +got):\n%s", diff)
	}
	// The upstream verifies the assertion against the JWKS over HTTP.
	set, _, _ := upFetchJWKS(t, f.signer.JWKS())
	c, err := upVerify(t, in.Header.Get(HeaderAssertion), set, "app", time.Now())
	if err != nil {
		t.Fatalf("assertion does not verify: %v", err)
	}
	if c.Email != "alice@example.com" || c.Subject != "alice@example.com" || len(c.Groups) != 2 {
		t.Errorf("assertion claims = %+v", c)
	}
	if in.Host != strings.TrimPrefix(f.upstream.URL, "http://") {
		t.Errorf("upstream Host = %q, want the upstream's own", in.Host)
	}
}

func TestStripClientHeadersRawKeys(t *testing.T) {
	h := http.Header{
		"x-gatehouse-user": {"m"}, "X-GATEHOUSE-EMAIL": {"m"}, "x_gatehouse_groups": {"g"}, "x-forwarded-for": {"1"},
		"FORWARDED": {"x"}, "x-client-ip": {"1"}, "X-Gatehouse": {"not a prefix match, kept"}, "Cookie": {"a=1"},
		"X-Forwardedness": {"kept"},
	}
	stripClientHeaders(h, nil)
	want := http.Header{"X-Gatehouse": {"not a prefix match, kept"}, "Cookie": {"a=1"}, "X-Forwardedness": {"kept"}}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("stripClientHeaders mismatch (-want +got):\n%s", diff)
	}
}

func TestUpstreamCookies(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string // nil: no Cookie header
	}{
		{"app cookies kept in order", []string{"a=1; __Host-gatehouse-session=secret; b=2; gatehouse_csrf=q"}, []string{"a=1; b=2"}},
		{"only gatehouse cookies", []string{"__Host-gatehouse=s; __Secure-gatehouse-x=y; GateHouse-app=z"}, nil},
		{"no gatehouse cookie untouched", []string{"sid=abc;theme=dark"}, []string{"sid=abc;theme=dark"}},
		{"several headers joined", []string{"a=1", "__Host-gatehouse-session=s", "b=2"}, []string{"a=1; b=2"}},
		{"similar names kept", []string{"mygatehouse=1; __Host-gate=2; gatehous=3; __Host-gatehouse-s=x"}, []string{"mygatehouse=1; __Host-gate=2; gatehous=3"}},
		{"value mentioning gatehouse kept", []string{"ref=gatehouse; x=1"}, []string{"ref=gatehouse; x=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Cookie": tt.in}
			stripGatehouseCookies(h)
			if diff := cmp.Diff(tt.want, h["Cookie"]); diff != "" {
				t.Errorf("stripGatehouseCookies(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}

	t.Run("end to end", func(t *testing.T) {
		f := upStart(t, "", 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Set-Cookie", "appsid=1; Path=/")
			w.Header().Add("Set-Cookie", CookiePrefix+"-session=fixated; Path=/; Secure")
			w.Header().Add("Set-Cookie", "__Secure-gatehouse=x")
			_, _ = io.WriteString(w, r.Header.Get("Cookie"))
		}))
		req, _ := http.NewRequest(http.MethodGet, f.proxy.URL+"/", nil)
		req.Header.Set("Cookie", "appsid=1; "+CookiePrefix+"-session=topsecret; pref=x")
		res, body := f.do(t, req)
		if body != "appsid=1; pref=x" {
			t.Errorf("upstream saw Cookie %q, want %q", body, "appsid=1; pref=x")
		}
		if diff := cmp.Diff([]string{"appsid=1; Path=/"}, res.Header["Set-Cookie"]); diff != "" {
			t.Errorf("Set-Cookie mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestIsGatehouseCookie(t *testing.T) {
	for name, want := range map[string]bool{
		CookiePrefix: true, CookiePrefix + "-app": true, "__host-GATEHOUSE": true, "gatehouse": true, " gatehouse_x": true,
		"__Secure-gatehouse-x": true, "gate": false, "__Host-": false, "": false, "app_gatehouse": false, "__Host-app": false,
	} {
		if got := IsGatehouseCookie(name); got != want {
			t.Errorf("IsGatehouseCookie(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestUpstreamPathAndQueryIntact(t *testing.T) {
	tests := []struct {
		name, base, uri, want string
	}{
		{"plain", "", "/a/b?x=1", "/a/b?x=1"},
		{"encoded chars", "", "/a%2Fb/c%20d/%E2%9C%93?q=a+b&r=%26z&s=%2F#", "/a%2Fb/c%20d/%E2%9C%93?q=a+b&r=%26z&s=%2F"},
		{"dot segments and empty query untouched", "", "/a/./b/../c?", "/a/./b/../c?"},
		{"base path", "/base", "/a%2Fb?x=%3D", "/base/a%2Fb?x=%3D"},
		{"base path with slash", "/base/", "/x", "/base/x"},
		{"repeated keys", "", "/?a=1&a=2&b", "/?a=1&a=2&b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := &upSeen{}
			f := upStart(t, tt.base, 0, seen)
			conn, err := upDialRaw(f.proxy)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// Write the request line by hand so no client normalises it.
			_, _ = io.WriteString(conn, "GET "+strings.TrimSuffix(tt.uri, "#")+" HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n")
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if got := seen.last(t).RequestURI; got != tt.want {
				t.Errorf("upstream RequestURI = %q, want %q", got, tt.want)
			}
		})
	}
}

// upDialRaw opens a TLS connection to a httptest TLS server.
func upDialRaw(srv *httptest.Server) (net.Conn, error) {
	tr := srv.Client().Transport.(*http.Transport)
	return tls.Dial("tcp", srv.Listener.Addr().String(), tr.TLSClientConfig)
}

func TestUpstreamRedirectPassedThrough(t *testing.T) {
	f := upStart(t, "", 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.example/login?next=%2Fx", http.StatusFound)
	}))
	req, _ := http.NewRequest(http.MethodGet, f.proxy.URL+"/x", nil)
	res, _ := f.do(t, req)
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "https://elsewhere.example/login?next=%2Fx" {
		t.Errorf("got %d Location %q, want 302 to elsewhere unchanged", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestUpstreamErrors(t *testing.T) {
	t.Run("upstream down", func(t *testing.T) {
		f := upStart(t, "", 0, http.NotFoundHandler())
		addr := f.upstream.Listener.Addr().String()
		f.upstream.Close()
		req, _ := http.NewRequest(http.MethodGet, f.proxy.URL+"/", nil)
		res, body := f.do(t, req)
		if res.StatusCode != http.StatusBadGateway {
			t.Errorf("status = %d, want 502", res.StatusCode)
		}
		_, port, _ := net.SplitHostPort(addr)
		for _, leak := range []string{"127.0.0.1", port, "dial", "refused", "tcp"} {
			if strings.Contains(body, leak) {
				t.Errorf("502 body %q leaks %q", body, leak)
			}
		}
		if res.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type = %q", res.Header.Get("Content-Type"))
		}
	})
	t.Run("slow upstream times out", func(t *testing.T) {
		release := make(chan struct{})
		f := upStart(t, "", 200*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer close(release)
		start := time.Now()
		req, _ := http.NewRequest(http.MethodGet, f.proxy.URL+"/", nil)
		res, body := f.do(t, req)
		if res.StatusCode != http.StatusGatewayTimeout || time.Since(start) > 5*time.Second {
			t.Errorf("got %d after %v (%q), want 504 soon after 200ms", res.StatusCode, time.Since(start), body)
		}
	})
	t.Run("body too large", func(t *testing.T) {
		var mu sync.Mutex
		most := int64(0)
		f := upStart(t, "", 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, err := io.Copy(io.Discard, r.Body)
			mu.Lock()
			most = max(most, n)
			mu.Unlock()
			if err != nil {
				http.Error(w, "short body", http.StatusBadRequest)
			}
		}))
		f.u.maxBody = 1 << 10
		// Declared length over the limit: refused before the upstream.
		req, _ := http.NewRequest(http.MethodPost, f.proxy.URL+"/", strings.NewReader(strings.Repeat("x", 2<<10)))
		if res, _ := f.do(t, req); res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("declared oversize body: status %d, want 413", res.StatusCode)
		}
		// Chunked body over the limit: cut off.
		req, _ = http.NewRequest(http.MethodPost, f.proxy.URL+"/", io.MultiReader(strings.NewReader(strings.Repeat("x", 4<<10))))
		req.ContentLength = -1
		if res, _ := f.do(t, req); res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked oversize body: status %d, want 413", res.StatusCode)
		}
		mu.Lock()
		if most > 1<<10 {
			t.Errorf("upstream received %d body bytes, limit 1024", most)
		}
		mu.Unlock()
		// Within the limit: forwarded.
		req, _ = http.NewRequest(http.MethodPost, f.proxy.URL+"/", strings.NewReader("small"))
		if res, _ := f.do(t, req); res.StatusCode != http.StatusOK {
			t.Errorf("small body: status %d, want 200", res.StatusCode)
		}
	})
	t.Run("no identity", func(t *testing.T) {
		seen := &upSeen{}
		f := upStart(t, "", 0, seen)
		rec := httptest.NewRecorder()
		f.u.Serve(rec, httptest.NewRequest(http.MethodGet, "/", nil), authz.Subject{})
		if rec.Code != http.StatusForbidden || seen.count() != 0 {
			t.Errorf("empty identity: status %d, upstream requests %d", rec.Code, seen.count())
		}
	})
	t.Run("bad config", func(t *testing.T) {
		s := upSigner(t, &assertiontest.FlakyStore{}, time.Now)
		for _, up := range []string{"", "ftp://x", "http://", "http://u:p@h", "http://h/?q", "::"} {
			if _, err := NewUpstream(config.Route{Name: "r", Upstream: up, Timeout: config.Duration(time.Second)}, s, nil); err == nil {
				t.Errorf("NewUpstream(%q) accepted", up)
			}
		}
		if _, err := NewUpstream(config.Route{Name: "r", Upstream: "http://h", Timeout: config.Duration(time.Second)}, nil, nil); err == nil {
			t.Error("NewUpstream without signer accepted")
		}
		// No timeout is refused, not read as 30s (config resolves the
		// default) nor as "wait forever".
		_, err := NewUpstream(config.Route{Name: "r", Upstream: "http://h"}, s, nil)
		if err == nil || !strings.Contains(err.Error(), "route r: timeout is required") {
			t.Errorf("NewUpstream without timeout = %v, want timeout is required", err)
		}
	})
}

func TestUpstreamWebSocketEcho(t *testing.T) {
	f := upStart(t, "", 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderUser) != "alice@example.com" {
			http.Error(w, "no identity", http.StatusForbidden)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(f.proxy.URL, "https")+"/ws", &websocket.DialOptions{HTTPClient: f.proxy.Client()})
	if err != nil {
		t.Fatalf("dial through proxy: %v", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	for _, msg := range []string{"hello", strings.Repeat("z", 100<<10)} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "echo: "+msg {
			t.Errorf("echo = %.40q, want %.40q", got, "echo: "+msg)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func TestUpstreamStreamsEvents(t *testing.T) {
	release := make(chan struct{})
	f := upStart(t, "", 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "data: second\n\n")
	}))
	req, _ := http.NewRequest(http.MethodGet, f.proxy.URL+"/events", nil)
	res, err := f.proxy.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(res.Body).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if line != "data: first\n" {
			t.Errorf("first event = %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Error("first event not flushed while the stream is open")
	}
	close(release)
}

func TestBufferPool(t *testing.T) {
	p := newBufferPool()
	b := p.Get()
	if len(b) != copyBufferSize {
		t.Fatalf("len = %d", len(b))
	}
	p.Put(b)
	p.Put(make([]byte, 10)) // too small: dropped, not panicking
	if got := len(p.Get()); got != copyBufferSize {
		t.Errorf("len after Put = %d", got)
	}
	if errors.Is(nil, io.EOF) {
		t.Fatal("unreachable")
	}
}
