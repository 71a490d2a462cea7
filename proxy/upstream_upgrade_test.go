//lint:file-ignore SA1019 the hostile upstream must accept the h2c Upgrade (RFC 7540 3.2), which only x/net/http2/h2c implements; net/http's own unencrypted HTTP/2 speaks prior knowledge only.

package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/net/http2/hpack"
)

// h2PriorKnowledgeFrames is what a client sends after a 101 to h2c: the
// preface, SETTINGS and a HEADERS frame for GET /admin/secret claiming
// another identity.
func h2PriorKnowledgeFrames(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&buf, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "app"}, {":path", "/admin/secret"},
		{"x-gatehouse-user", "mallory@example.com"}, {"x-gatehouse-groups", "ops,security"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// h2cRecorder is a hostile upstream that accepts h2c upgrades and records
// every request it serves, with its protocol.
type h2cRecorder struct {
	mu   sync.Mutex
	reqs []string // "HTTP/x.y METHOD PATH upgrade=..."
}

func (h *h2cRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.reqs = append(h.reqs, r.Proto+" "+r.Method+" "+r.URL.Path+" upgrade="+r.Header.Get("Upgrade")+" settings="+r.Header.Get("Http2-Settings"))
	h.mu.Unlock()
	_, _ = io.WriteString(w, "ok "+r.Proto)
}

func (h *h2cRecorder) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.reqs...)
}

// TestHopRefusesH2CTunnel is issue 12 defect 1: an h2c upgrade through
// Gatehouse reaches an h2c-capable upstream as a plain HTTP/1.1 request,
// and HTTP/2 frames sent after it never reach the upstream.
func TestHopRefusesH2CTunnel(t *testing.T) {
	rec := &h2cRecorder{}
	s := startHostile(t, h2c.NewHandler(rec, &http2.Server{}), nil)
	conf := &tls.Config{ServerName: "app.test", RootCAs: selfSignedPool(t, s.f.dataDir), NextProtos: []string{"http/1.1"}}
	c, err := tlsDial(s.f, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// HTTP2-Settings is not named in Connection, so a proxy that only
	// drops what Connection names passes it on with the upgrade.
	_, _ = io.WriteString(c, "GET /p/ok HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n"+
		"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok HTTP/1.1" {
		t.Fatalf("h2c upgrade answered %d %q, want a plain 200 from HTTP/1.1", resp.StatusCode, body)
	}
	// Now talk HTTP/2 on the connection as if the tunnel were open.
	_, _ = c.Write(h2PriorKnowledgeFrames(t))
	if resp, err := http.ReadResponse(br, nil); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("HTTP/2 frames after the upgrade answered %d", resp.StatusCode)
		}
	}
	want := []string{"HTTP/1.1 GET /p/ok upgrade= settings="}
	if got := rec.seen(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("upstream saw %q, want only %q", got, want)
	}
}

// TestHopUpgradeTokens: only a lone "websocket" token on a GET with
// Connection: upgrade reaches the upstream as an upgrade; everything else
// arrives as a plain request without the hop-by-hop headers.
func TestHopUpgradeTokens(t *testing.T) {
	seen := &upSeen{}
	f := upStart(t, "", 0, seen)
	tests := []struct {
		name    string
		method  string
		headers string
	}{
		{"h2c", "GET", "Connection: Upgrade, HTTP2-Settings, X-Hop\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\nX-Hop: 1\r\n"},
		{"h2c upper case", "GET", "Connection: UPGRADE\r\nUpgrade: H2C\r\n"},
		{"websocket and h2c", "GET", "Connection: upgrade\r\nUpgrade: websocket, h2c\r\n"},
		{"two Upgrade lines", "GET", "Connection: upgrade\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n"},
		{"websocket by POST", "POST", "Connection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n"},
		{"tls upgrade", "GET", "Connection: upgrade\r\nUpgrade: TLS/1.3\r\n"},
		{"upgrade without connection", "GET", "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n"},
	}
	addr := f.proxy.Listener.Addr().String()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := f.proxy.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
			conf.NextProtos = []string{"http/1.1"}
			c, err := tls.Dial("tcp", addr, conf)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, tt.method+" /x HTTP/1.1\r\nHost: app\r\n"+tt.headers+"\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200 (a plain request)", resp.StatusCode)
			}
			in := seen.last(t)
			for _, h := range []string{"Upgrade", "Connection", "Http2-Settings", "X-Hop"} {
				if v, ok := in.Header[h]; ok {
					t.Errorf("upstream got %s: %q", h, v)
				}
			}
		})
	}
}

// TestHopRefusesUnrequestedSwitch: an upstream that answers 101 to a
// request that asked for no WebSocket gets no tunnel; bytes the client
// sends afterwards never reach it.
func TestHopRefusesUnrequestedSwitch(t *testing.T) {
	got := make(chan []byte, 4)
	f := upStart(t, "", 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + r.URL.Query().Get("to") + "\r\n\r\n")
		_ = brw.Flush()
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		b, _ := io.ReadAll(brw)
		got <- b
	}))
	for _, to := range []string{"h2c", "", "websocket"} {
		t.Run("to="+to, func(t *testing.T) {
			conf := f.proxy.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
			conf.NextProtos = []string{"http/1.1"}
			c, err := tls.Dial("tcp", f.proxy.Listener.Addr().String(), conf)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			// An h2c request: the hop strips the upgrade; even a
			// "websocket" 101 does not match what was asked.
			_, _ = io.WriteString(c, "GET /x?to="+to+" HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("status %d, want 502", resp.StatusCode)
			}
			_, _ = c.Write([]byte("GET /admin/secret HTTP/1.1\r\nHost: app\r\n\r\n"))
			if b := <-got; len(b) > 0 {
				t.Errorf("upstream received %q after its 101", b)
			}
		})
	}
}

// TestIsWebSocketUpgrade covers the predicate itself.
func TestIsWebSocketUpgrade(t *testing.T) {
	req := func(method string, major, minor int, h http.Header) *http.Request {
		r := httptest.NewRequest(method, "/", nil)
		r.ProtoMajor, r.ProtoMinor, r.Header = major, minor, h
		return r
	}
	ws := func() http.Header {
		return http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"WebSocket"}}
	}
	if !isWebSocketUpgrade(req("GET", 1, 1, ws())) {
		t.Error("a WebSocket upgrade was not recognised")
	}
	for name, r := range map[string]*http.Request{
		"HTTP/2":        req("GET", 2, 0, ws()),
		"HTTP/1.0":      req("GET", 1, 0, ws()),
		"POST":          req("POST", 1, 1, ws()),
		"no Connection": req("GET", 1, 1, http.Header{"Upgrade": {"websocket"}}),
		"two tokens":    req("GET", 1, 1, http.Header{"Connection": {"upgrade"}, "Upgrade": {"websocket, h2c"}}),
		"h2c":           req("GET", 1, 1, http.Header{"Connection": {"upgrade"}, "Upgrade": {"h2c"}}),
	} {
		if isWebSocketUpgrade(r) {
			t.Errorf("%s: taken for a WebSocket upgrade", name)
		}
	}
}
