package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/gatehouse-dev/gatehouse/config"
)

// wsEcho is an upstream WebSocket echo that accepts any origin (the front
// is the one that must check).
var wsEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, msg); err != nil {
			return
		}
	}
})

// wsDial opens a WebSocket to app.test through the front with origin.
func wsDial(t *testing.T, s *hostileStack, origin string) (*websocket.Conn, int, error) {
	t.Helper()
	addr := s.f.HTTPSAddr().String()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: selfSignedPool(t, s.f.dataDir), ServerName: "app.test", NextProtos: []string{"http/1.1"}},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, res, err := websocket.Dial(ctx, "wss://app.test/p/ws", &websocket.DialOptions{HTTPClient: client, HTTPHeader: h})
	code := 0
	if res != nil {
		code = res.StatusCode
	}
	return c, code, err
}

func wsEchoOnce(t *testing.T, c *websocket.Conn) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		return err
	}
	_, got, err := c.Read(ctx)
	if err == nil && string(got) != "ping" {
		t.Errorf("echo = %q", got)
	}
	return err
}

func TestFrontWebSocketOrigin(t *testing.T) {
	s := startHostile(t, wsEcho, func(c *config.Config, _ *FrontConfig) {
		c.Routes[0].WebSocketOrigins = []string{"https://console.example.com"}
	})
	for _, tt := range []struct {
		origin string
		want   int
	}{
		{"https://app.test", http.StatusSwitchingProtocols},
		{"https://APP.test", http.StatusSwitchingProtocols},
		{"https://console.example.com", http.StatusSwitchingProtocols},
		{"https://noapp.test", http.StatusForbidden}, // a sibling app host: same site, other origin
		{"https://evil.example", http.StatusForbidden},
		{"http://app.test", http.StatusForbidden},
		{"https://app.test:8443", http.StatusForbidden},
		{"null", http.StatusForbidden},
		{"", http.StatusForbidden},
	} {
		t.Run(tt.origin, func(t *testing.T) {
			c, code, err := wsDial(t, s, tt.origin)
			if code != tt.want {
				t.Fatalf("status %d (%v), want %d", code, err, tt.want)
			}
			if c == nil {
				if !s.audit.has("http.refused", "websocket origin not allowed") {
					t.Error("no audit event for the refused origin")
				}
				return
			}
			defer c.CloseNow()
			if err := wsEchoOnce(t, c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFrontWebSocketCapAndShutdown(t *testing.T) {
	s := startHostile(t, wsEcho, func(_ *config.Config, fc *FrontConfig) {
		fc.MaxWebSocketsPerSession = 2
	})
	var open []*websocket.Conn
	for range 2 {
		c, code, err := wsDial(t, s, "https://app.test")
		if err != nil {
			t.Fatalf("dial: %d %v", code, err)
		}
		open = append(open, c)
	}
	if _, code, err := wsDial(t, s, "https://app.test"); code != http.StatusTooManyRequests {
		t.Fatalf("third WebSocket: %d %v, want 429", code, err)
	}
	if got := gaugeValue(t, s.f.metrics.websockets); got != 2 {
		t.Errorf("open WebSockets gauge = %v, want 2", got)
	}
	// Closing one frees its slot.
	open[0].Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for gaugeValue(t, s.f.metrics.websockets) != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c, code, err := wsDial(t, s, "https://app.test")
	if err != nil {
		t.Fatalf("dial after a close: %d %v", code, err)
	}
	open[0] = c
	// Shutdown ends live WebSockets instead of leaving them to run.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.f.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i, c := range open {
		if err := wsEchoOnce(t, c); err == nil {
			t.Errorf("WebSocket %d still works after Shutdown", i)
		}
	}
}

// TestFrontWebSocketsEndWithTheSession: a lock or sign-out (CloseWebSockets)
// ends that person's tunnels, and a reload ends the tunnels of a route it
// changes, so no WebSocket outlives the access it was admitted under.
func TestFrontWebSocketsEndWithTheSession(t *testing.T) {
	s := startHostile(t, wsEcho, nil)
	dial := func() *websocket.Conn {
		t.Helper()
		c, code, err := wsDial(t, s, "https://app.test")
		if err != nil {
			t.Fatalf("dial: %d %v", code, err)
		}
		return c
	}
	c := dial()
	if n := s.f.CloseWebSockets("someone-else@example.com"); n != 0 {
		t.Errorf("CloseWebSockets(someone else) closed %d", n)
	}
	if err := wsEchoOnce(t, c); err != nil {
		t.Fatalf("an unrelated close ended the WebSocket: %v", err)
	}
	if n := s.f.CloseWebSockets(strings.ToUpper(upAlice.Email)); n != 1 {
		t.Errorf("CloseWebSockets(alice) closed %d, want 1", n)
	}
	if err := wsEchoOnce(t, c); err == nil {
		t.Error("alice's WebSocket still works after CloseWebSockets")
	}

	c = dial()
	next := *s.cfg
	next.Routes = append([]config.Route(nil), s.cfg.Routes...)
	next.Routes[0].Allow = config.Allow{Groups: []string{"nobody"}}
	apps := map[string]http.Handler{}
	for _, rt := range next.Routes {
		apps[rt.Host] = http.NotFoundHandler()
	}
	if err := s.f.Reload(&next, nil, apps); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if err := wsEchoOnce(t, c); err == nil {
		t.Error("a WebSocket on a route the reload changed still works")
	}
}
