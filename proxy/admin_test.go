package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func runAdmin(t *testing.T, ac AdminConfig) *Admin {
	t.Helper()
	ac.Addr = "127.0.0.1:0"
	ac.Logger = frontTestLogger(t)
	a, err := NewAdmin(ac)
	if err != nil {
		t.Fatalf("NewAdmin: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Admin.Serve: %v", err)
		}
	})
	return a
}

func adminDo(t *testing.T, a *Admin, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+a.Addr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdmin(t *testing.T) {
	cfg := frontTestConfig(t)
	f, err := NewFront(FrontConfig{Config: cfg, Logger: frontTestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	storeErr := errors.New("store closed")
	storeState := &storeErr
	a := runAdmin(t, AdminConfig{
		Metrics: f.Metrics(),
		Ready: []ReadyCheck{
			{Name: "https", Check: f.Ready},
			{Name: "store", Check: func(context.Context) error { return *storeState }},
		},
	})

	check := func(name, method, path string, wantCode int, wantBody ...string) {
		t.Helper()
		code, body := adminDo(t, a, method, path)
		if code != wantCode {
			t.Errorf("%s: %s %s = %d, want %d (body %q)", name, method, path, code, wantCode, body)
		}
		for _, w := range wantBody {
			if !strings.Contains(body, w) {
				t.Errorf("%s: %s %s body lacks %q:\n%s", name, method, path, w, body)
			}
		}
	}
	check("up", "GET", "/healthz", 200, "ok")
	check("before serving", "GET", "/readyz", 503, "https: https listener not serving yet", "store: store closed")
	check("POST refused", "POST", "/healthz", 405)
	check("DELETE refused", "DELETE", "/readyz", 405)
	check("unknown path", "GET", "/debug/pprof/", 404)

	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- f.Serve(ctx) }()
	waitReady(t, f)
	check("store still down", "GET", "/readyz", 503, "store: store closed")
	*storeState = nil
	check("all ready", "GET", "/readyz", 200, "ready")

	// One request through the front shows up in /metrics.
	resp, err := frontClient(f, selfSignedPool(t, f.dataDir), "").Get("https://gate.test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	check("metrics", "GET", "/metrics", 200,
		`gatehouse_http_requests_total{code="200",host="gate.test"} 1`,
		`gatehouse_build_info{`,
		`gatehouse_tls_handshake_failures_total 0`,
		`go_goroutines`,
	)

	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	check("after shutdown", "GET", "/readyz", 503, "https: shutting down")
}

func TestAdminNoChecksNotReady(t *testing.T) {
	a := runAdmin(t, AdminConfig{Metrics: prometheus.NewRegistry()})
	if code, _ := adminDo(t, a, "GET", "/readyz"); code != 503 {
		t.Errorf("/readyz with no checks = %d, want 503", code)
	}
	if _, err := NewAdmin(AdminConfig{Addr: "127.0.0.1:0"}); err == nil {
		t.Errorf("NewAdmin without a registry succeeded")
	}
}

// TestAdminNeedsAddr: an empty listen.admin is refused, never read as a
// default address (config resolves the default; the door does not).
func TestAdminNeedsAddr(t *testing.T) {
	_, err := NewAdmin(AdminConfig{Metrics: prometheus.NewRegistry()})
	if err == nil || err.Error() != "admin: listen.admin is required" {
		t.Errorf("NewAdmin without an address = %v, want listen.admin is required", err)
	}
}

func TestHandshakeFailuresCounted(t *testing.T) {
	f := runFront(t, FrontConfig{Config: frontTestConfig(t)})
	for range 3 {
		c, err := tlsDial(f, &tlsConfigTLS11)
		if err == nil {
			c.Close()
			t.Fatal("TLS 1.1 handshake succeeded")
		}
	}
	// net/http logs the failure after the client has seen it; wait a bit.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := frontCounterValue(t, f.metrics.handshakeFailures)
		if n == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("handshake failures = %v, want 3", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
