package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/testlog"
)

// frontTestLogger sends logs to t.Log (many proxy tests call it by this
// name).
func frontTestLogger(t testing.TB) *slog.Logger { return testlog.New(t) }

// frontTestConfig is a valid self-signed config with two routes; app.test gets a
// handler in the tests, noapp.test does not.
func frontTestConfig(t testing.TB) *config.Config {
	cfg := &config.Config{
		PublicURL: "https://gate.test",
		Listen:    config.Listen{HTTPS: "127.0.0.1:0"},
		TLS:       config.TLS{Mode: config.TLSModeSelfSigned},
		DataDir:   t.TempDir(),
		SSO:       config.SSO{Issuer: "https://idp.test", ClientID: "gatehouse", ClientSecretFile: "/nonexistent/secret"},
		Routes: []config.Route{
			{Name: "app", Host: "app.test", Upstream: "http://127.0.0.1:9", Allow: config.Allow{Groups: []string{"eng"}}},
			{Name: "noapp", Host: "noapp.test", Upstream: "http://127.0.0.1:9", Allow: config.Allow{Groups: []string{"eng"}}},
		},
	}
	cfg.ApplyDefaults() // as config.Load does
	return cfg
}

// countingApp is an application handler that counts the requests reaching it.
type countingApp struct{ hits atomic.Int64 }

func (a *countingApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.hits.Add(1)
	// An upstream's own HSTS must be replaced by Gatehouse's.
	w.Header().Set("Strict-Transport-Security", "max-age=0")
	_, _ = w.Write([]byte("app:" + r.URL.Path))
}

// runFront builds a front for cfg, serves it, and stops it when the test
// ends, failing the test if Serve reports an error.
func runFront(t *testing.T, fc FrontConfig) *Front {
	t.Helper()
	if fc.Logger == nil {
		fc.Logger = frontTestLogger(t)
	}
	f, err := NewFront(fc)
	if err != nil {
		t.Fatalf("NewFront: %v", err)
	}
	served := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { served <- f.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	waitReady(t, f)
	return f
}

func waitReady(t *testing.T, f *Front) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f.Ready(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("front not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// selfSignedPool trusts the self-signed certificate in dataDir.
func selfSignedPool(t testing.TB, dataDir string) *x509.CertPool {
	t.Helper()
	pemData, err := os.ReadFile(filepath.Join(dataDir, selfSignedDir, selfSignedCertName))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatal("no certificate in self-signed file")
	}
	return pool
}

// frontClient returns a client that dials the front whatever the URL's
// host, trusts roots and uses serverName as SNI (empty: the URL's host).
func frontClient(f *Front, roots *x509.CertPool, serverName string) *http.Client {
	addr := f.HTTPSAddr().String()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: serverName},
		ForceAttemptHTTP2: true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// tlsDial completes a handshake with the front as conf describes.
func tlsDial(f *Front, conf *tls.Config) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", f.HTTPSAddr().String(), conf)
	if err != nil {
		return nil, err
	}
	return c, nil
}

var tlsConfigTLS11 = tls.Config{ServerName: "gate.test", MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11, InsecureSkipVerify: true}

// frontCounterValue reads a counter's current value.
func frontCounterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
