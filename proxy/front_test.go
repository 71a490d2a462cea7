package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// frontRawRequest sends req verbatim over a TLS connection with the given SNI and
// returns the response.
func frontRawRequest(t *testing.T, f *Front, sni, req string) (*http.Response, string) {
	t.Helper()
	conf := &tls.Config{ServerName: sni, RootCAs: selfSignedPool(t, f.dataDir), NextProtos: []string{"http/1.1"}}
	if sni == "evil.test" {
		// The certificate does not name it; the handshake still completes
		// (as for a client that ignores the name) and routing must refuse.
		conf.InsecureSkipVerify = true
	}
	c, err := tlsDial(f, conf)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestFrontRouting(t *testing.T) {
	app := &countingApp{}
	f := runFront(t, FrontConfig{Config: frontTestConfig(t), Apps: map[string]http.Handler{"app.test": app}})
	own := map[string]string{ // headers on Gatehouse's own pages
		"Content-Security-Policy": cspValue,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
	}
	tests := []struct {
		name     string
		sni      string
		req      string
		wantCode int
		wantBody string // prefix
		wantHit  bool   // the app handler ran
		ownPage  bool   // Gatehouse's own security headers expected
	}{
		{"portal", "gate.test", "GET / HTTP/1.1\r\nHost: gate.test\r\n\r\n", 200, "<!doctype html>", false, true},
		{"portal host case and port", "gate.test", "GET / HTTP/1.1\r\nHost: GATE.Test:443\r\n\r\n", 200, "<!doctype html>", false, true},
		{"app", "app.test", "GET /x HTTP/1.1\r\nHost: app.test\r\n\r\n", 200, "app:/x", true, false},
		{"route without handler", "noapp.test", "GET / HTTP/1.1\r\nHost: noapp.test\r\n\r\n", 503, "route not available", false, true},
		{"unknown host", "gate.test", "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n", 421, "unknown host", false, true},
		{"unknown host and SNI", "evil.test", "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n", 421, "unknown host", false, true},
		{"Host differs from SNI", "gate.test", "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n", 421, "misdirected request", false, true},
		{"SNI of app, Host of portal", "app.test", "GET / HTTP/1.1\r\nHost: gate.test\r\n\r\n", 421, "misdirected request", false, true},
		{"absolute URI", "app.test", "GET http://app.test/x HTTP/1.1\r\nHost: app.test\r\n\r\n", 400, "the request target must be a path", false, true},
		{"absolute URI other host", "app.test", "GET https://evil.test/ HTTP/1.1\r\nHost: app.test\r\n\r\n", 400, "the request target must be a path", false, true},
		{"CONNECT", "app.test", "CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n", 405, "CONNECT is not allowed", false, true},
		{"CONNECT to route host", "app.test", "CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n", 405, "CONNECT is not allowed", false, true},
		{"asterisk form", "app.test", "OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n", 400, "the request target must be a path", false, true},
		{"oversized header", "app.test", "GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", 431, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := app.hits.Load()
			resp, body := frontRawRequest(t, f, tt.sni, tt.req)
			if resp.StatusCode != tt.wantCode {
				t.Errorf("status = %d, want %d (body %q)", resp.StatusCode, tt.wantCode, body)
			}
			if !strings.HasPrefix(body, tt.wantBody) {
				t.Errorf("body = %q, want prefix %q", body, tt.wantBody)
			}
			if hit := app.hits.Load() > before; hit != tt.wantHit {
				t.Errorf("app reached = %v, want %v", hit, tt.wantHit)
			}
			if tt.wantCode == http.StatusRequestHeaderFieldsTooLarge {
				return // written by net/http itself
			}
			if got := resp.Header.Get("Strict-Transport-Security"); got != hstsValue {
				t.Errorf("Strict-Transport-Security = %q, want %q", got, hstsValue)
			}
			if tt.ownPage {
				got := map[string]string{}
				for k := range own {
					got[k] = resp.Header.Get(k)
				}
				if diff := cmp.Diff(own, got); diff != "" {
					t.Errorf("security headers (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestFrontHTTP2 checks that HTTP/2 is negotiated and that connection
// coalescing onto another route's connection is refused with 421.
func TestFrontHTTP2(t *testing.T) {
	app := &countingApp{}
	f := runFront(t, FrontConfig{Config: frontTestConfig(t), Apps: map[string]http.Handler{"app.test": app}})
	c := frontClient(f, selfSignedPool(t, f.dataDir), "gate.test")
	for _, tt := range []struct {
		url      string
		wantCode int
	}{
		{"https://gate.test/", 200},
		{"https://app.test/", 421}, // same connection (SNI gate.test)
	} {
		resp, err := c.Get(tt.url)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.url, err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Errorf("GET %s: protocol %s, want HTTP/2", tt.url, resp.Proto)
		}
		if resp.StatusCode != tt.wantCode {
			t.Errorf("GET %s: status %d, want %d", tt.url, resp.StatusCode, tt.wantCode)
		}
	}
	if n := app.hits.Load(); n != 0 {
		t.Errorf("app reached %d times through a misdirected connection", n)
	}
}

func TestFrontGracefulShutdown(t *testing.T) {
	cfg := frontTestConfig(t)
	started, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	f, err := NewFront(FrontConfig{Config: cfg, Apps: map[string]http.Handler{"app.test": slow}, Logger: frontTestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- f.Serve(ctx) }()
	waitReady(t, f)
	c := frontClient(f, selfSignedPool(t, f.dataDir), "")
	type result struct {
		code int
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := c.Get("https://app.test/")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()
	<-started
	cancel() // as SIGTERM does
	for deadline := time.Now().Add(5 * time.Second); f.Ready(context.Background()) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Ready during shutdown = nil, want error")
		}
	}
	// New connections are refused while the in-flight request drains.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := tlsDial(f, &tls.Config{ServerName: "gate.test", RootCAs: selfSignedPool(t, f.dataDir)})
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("new connections still accepted during shutdown")
		}
	}
	close(release)
	r := <-got
	if r.err != nil || r.code != 200 || r.body != "done" {
		t.Errorf("in-flight request = %d %q %v, want 200 \"done\"", r.code, r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	if _, err := tlsDial(f, &tls.Config{ServerName: "gate.test", RootCAs: selfSignedPool(t, f.dataDir)}); err == nil {
		t.Errorf("dial after shutdown succeeded")
	}
}
