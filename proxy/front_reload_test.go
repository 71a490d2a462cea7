package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// frontGetStatus returns the status of GET https://host/ through the front.
func frontGetStatus(t *testing.T, f *Front, roots *x509.CertPool, host string) int {
	t.Helper()
	c := frontClient(f, roots, "")
	if roots == nil { // a client that ignores the certificate's names
		c.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
	}
	resp, err := c.Get("https://" + host + "/")
	if err != nil {
		t.Fatalf("GET %s: %v", host, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestReloadRouting(t *testing.T) {
	cfg := frontTestConfig(t)
	app := &countingApp{}
	f := runFront(t, FrontConfig{Config: cfg, Apps: map[string]http.Handler{"app.test": app}})
	roots := selfSignedPool(t, f.dataDir)

	bad := *cfg
	bad.Routes = append([]config.Route(nil), cfg.Routes...)
	bad.Routes[0].Upstream = "ftp://nowhere"
	moved := *cfg
	moved.Listen.HTTPS = "127.0.0.1:1"
	mode := *cfg
	mode.TLS.Mode = config.TLSModeACME
	tests := []struct {
		name    string
		cfg     *config.Config
		apps    map[string]http.Handler
		wantErr string
	}{
		{"invalid config", &bad, map[string]http.Handler{"app.test": app}, "scheme must be http or https"},
		{"listen address changed", &moved, map[string]http.Handler{"app.test": app}, "listen.https changed"},
		{"tls mode changed", &mode, map[string]http.Handler{"app.test": app}, "tls.mode changed"},
		{"handler for an unknown host", cfg, map[string]http.Handler{"evil.test": app}, "not a configured route host"},
		{"nil config", nil, nil, "no config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.Reload(tt.cfg, nil, tt.apps)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Reload = %v, want error containing %q", err, tt.wantErr)
			}
			// The old routing still serves.
			before := app.hits.Load()
			if code := frontGetStatus(t, f, roots, "app.test"); code != 200 || app.hits.Load() != before+1 {
				t.Errorf("after refused reload: app.test status %d, hits %d; want 200 and one hit", code, app.hits.Load()-before)
			}
		})
	}

	// A valid reload that drops app.test and adds new.test.
	next := *cfg
	next.Routes = []config.Route{cfg.Routes[1], {Name: "new", Host: "new.test", Upstream: "http://127.0.0.1:9", Allow: config.Allow{Emails: []string{"a@b.test"}}}}
	newApp := &countingApp{}
	if err := f.Reload(&next, nil, map[string]http.Handler{"new.test": newApp}); err != nil {
		t.Fatalf("Reload(valid) = %v", err)
	}
	roots = selfSignedPool(t, f.dataDir) // the self-signed certificate now names new.test
	for host, want := range map[string]int{"new.test": 200, "app.test": 421, "noapp.test": 503, "gate.test": 200} {
		r := roots
		if host == "app.test" {
			r = nil // no longer named by the certificate
		}
		if code := frontGetStatus(t, f, r, host); code != want {
			t.Errorf("after reload: %s status %d, want %d", host, code, want)
		}
	}
	if newApp.hits.Load() != 1 {
		t.Errorf("new app hits = %d, want 1", newApp.hits.Load())
	}
}

// frontWriteKeyPair writes a self-signed pair for hosts to dir and returns the
// paths.
func frontWriteKeyPair(t *testing.T, dir string, hosts []string, now time.Time) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, err := makeSelfSigned(hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func servedCert(t *testing.T, f *Front) []byte {
	t.Helper()
	c, err := tlsDial(f, &tls.Config{ServerName: "gate.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

func TestReloadCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	hosts := []string{"gate.test", "app.test", "noapp.test"}
	certFile, keyFile := frontWriteKeyPair(t, dir, hosts, time.Now())
	cfg := frontTestConfig(t)
	cfg.TLS.Mode, cfg.TLS.CertFile, cfg.TLS.KeyFile = config.TLSModeFiles, certFile, keyFile
	f := runFront(t, FrontConfig{Config: cfg})
	first := servedCert(t, f)

	// Broken files: refused, the old certificate stays.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(cfg, nil, nil); err == nil {
		t.Errorf("Reload with a broken certificate file = nil, want error")
	}
	if !bytes.Equal(servedCert(t, f), first) {
		t.Errorf("certificate changed after a refused reload")
	}

	// An expired certificate is refused too.
	frontWriteKeyPair(t, dir, hosts, time.Now().Add(-2*selfSignedValidity))
	if err := f.Reload(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("Reload with an expired certificate = %v, want an expiry error", err)
	}

	// A new valid pair at the same paths is picked up.
	frontWriteKeyPair(t, dir, hosts, time.Now())
	if err := f.Reload(cfg, nil, nil); err != nil {
		t.Fatalf("Reload = %v", err)
	}
	if bytes.Equal(servedCert(t, f), first) {
		t.Errorf("certificate unchanged after reload with new files")
	}
}

func TestNewFrontErrors(t *testing.T) {
	dir := t.TempDir()
	expiredCert, expiredKey := frontWriteKeyPair(t, dir, []string{"gate.test"}, time.Now().Add(-2*selfSignedValidity))
	tests := []struct {
		name    string
		mutate  func(*config.Config)
		apps    map[string]http.Handler
		wantErr string
	}{
		{"invalid config", func(c *config.Config) { c.PublicURL = "http://gate.test" }, nil, "public_url"},
		{"no https listener", func(c *config.Config) { c.Listen = config.Listen{SSH: ":2222"}; c.Routes = nil }, nil, "listen.https is not set"},
		{"missing cert files", func(c *config.Config) {
			c.TLS.Mode, c.TLS.CertFile, c.TLS.KeyFile = config.TLSModeFiles, "/nonexistent/c", "/nonexistent/k"
		}, nil, "no such file"},
		{"expired cert", func(c *config.Config) {
			c.TLS.Mode, c.TLS.CertFile, c.TLS.KeyFile = config.TLSModeFiles, expiredCert, expiredKey
		}, nil, "expired"},
		{"handler for unknown host", func(*config.Config) {}, map[string]http.Handler{"evil.test": http.NotFoundHandler()}, "not a configured route host"},
		{"listen address in use", nil, nil, "listen.https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := frontTestConfig(t)
			if tt.mutate != nil {
				tt.mutate(cfg)
			} else {
				busy := runFront(t, FrontConfig{Config: frontTestConfig(t)})
				cfg.Listen.HTTPS = busy.HTTPSAddr().String()
			}
			f, err := NewFront(FrontConfig{Config: cfg, Apps: tt.apps, Logger: frontTestLogger(t)})
			if err == nil {
				_ = f.Shutdown(t.Context())
				t.Fatalf("NewFront succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewFront = %v, want error containing %q", err, tt.wantErr)
			}
			if errors.Is(err, config.ErrRestartRequired) {
				t.Errorf("NewFront error wraps config.ErrRestartRequired")
			}
		})
	}
}
