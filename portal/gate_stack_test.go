package portal

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/testlog"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// upStack is the whole browser path in one process: the front door (TLS,
// host routing, security headers), the app gate (session cookie, authz)
// and the Upstream, in front of a test upstream.
type upStack struct {
	client *http.Client
	cookie string
}

func upStartStack(t *testing.T, upstream http.Handler) *upStack {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	m := upMint(t, "https://gate.test", "app.test")
	cfg := &config.Config{
		PublicURL: "https://gate.test",
		Listen:    config.Listen{HTTPS: "127.0.0.1:0"},
		TLS:       config.TLS{Mode: config.TLSModeSelfSigned},
		DataDir:   t.TempDir(),
		SSO:       config.SSO{Issuer: "https://idp.test", ClientID: "gatehouse", ClientSecretFile: "/nonexistent/secret"},
		MFA:       config.MFA{MaxAge: config.Duration(12 * time.Hour)},
		Routes:    []config.Route{{Name: "app", Host: "app.test", Upstream: up.URL, Allow: config.Allow{Groups: []string{"eng"}}}},
	}
	cfg.ApplyDefaults() // as config.Load does
	route := cfg.Routes[0]
	u, err := proxy.NewUpstream(route, upSigner(t, upBolt(t), time.Now), testlog.New(t))
	if err != nil {
		t.Fatal(err)
	}
	app, err := NewApp(route, u, AppDeps{Config: cfg, Codec: m.codec, Sessions: m.sessions, Audit: upNopAudit{}, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := proxy.NewFront(proxy.FrontConfig{Config: cfg, Apps: map[string]http.Handler{"app.test": app}, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- f.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(20 * time.Second):
			t.Error("front did not stop")
		}
	})
	addr := f.HTTPSAddr().String()
	client := &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
			// The front's self-signed certificate; this test is about the
			// proxy path, not certificate checks (the front's tests do those).
			TLSClientConfig: &tls.Config{ServerName: "app.test", InsecureSkipVerify: true},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("front not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &upStack{client: client, cookie: SessionCookie + "=" + m.cookie}
}

func TestStackIdentityAndCookies(t *testing.T) {
	seen := &upSeen{}
	s := upStartStack(t, seen)
	tests := []struct {
		name       string
		cookie     string
		wantStatus int
		wantUser   string
		wantCookie string
	}{
		{"no session goes to the portal", "app=1", http.StatusFound, "", ""},
		{"forged session goes to the portal", SessionCookie + "=AAAA; app=1", http.StatusFound, "", ""},
		{"valid session reaches the upstream", s.cookie + "; app=1", http.StatusOK, "alice@example.com", "app=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := seen.count()
			req, _ := http.NewRequest(http.MethodGet, "https://app.test/p/q?x=%26", nil)
			req.Header.Set("Cookie", tt.cookie)
			req.Header.Set("X-Gatehouse-User", "mallory@example.com")
			res, err := s.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if tt.wantUser == "" {
				if seen.count() != before {
					t.Error("request without a valid session reached the upstream")
				}
				return
			}
			in := seen.last(t)
			if got := in.Header.Values(proxy.HeaderUser); len(got) != 1 || got[0] != tt.wantUser {
				t.Errorf("X-Gatehouse-User = %q, want [%s]", got, tt.wantUser)
			}
			if got := in.Header.Get("Cookie"); got != tt.wantCookie {
				t.Errorf("upstream Cookie = %q, want %q", got, tt.wantCookie)
			}
			if in.RequestURI != "/p/q?x=%26" {
				t.Errorf("upstream RequestURI = %q", in.RequestURI)
			}
		})
	}
}

func TestStackWebSocketAndStreaming(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := upStartStack(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ws":
			// The hop sends the upstream's own Host with the browser's
			// Origin, as an upstream behind a proxy sees it.
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: []string{"app.test"}})
			if err != nil {
				return
			}
			defer c.CloseNow()
			for {
				typ, msg, err := c.Read(r.Context())
				if err != nil {
					return
				}
				if err := c.Write(r.Context(), typ, append([]byte(r.Header.Get(proxy.HeaderUser)+": "), msg...)); err != nil {
					return
				}
			}
		case "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss://app.test/ws", &websocket.DialOptions{
		// The route's own origin: the front refuses foreign ones (issue 12).
		HTTPClient: s.client, HTTPHeader: http.Header{"Cookie": {s.cookie}, "Origin": {"https://app.test"}},
	})
	if err != nil {
		t.Fatalf("websocket through the front: %v", err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != "alice@example.com: ping" {
		t.Errorf("echo = %q, %v", got, err)
	}
	c.Close(websocket.StatusNormalClosure, "")

	if _, _, err := websocket.Dial(ctx, "wss://app.test/ws", &websocket.DialOptions{HTTPClient: s.client}); err == nil {
		t.Error("websocket without a session was accepted")
	}

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://app.test/events", nil)
	req.Header.Set("Cookie", s.cookie)
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Errorf("first event = %q, %v (want it while the stream stays open)", line, err)
	}
	if !strings.Contains(res.Header.Get("Strict-Transport-Security"), "max-age") {
		t.Errorf("front security headers missing on a proxied response")
	}
}
