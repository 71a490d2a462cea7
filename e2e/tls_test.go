package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// gateHost is the portal host name in the TLS tests and appHost the host
// of their one route; the test CA issues the certificate for both, and
// clients connect to 127.0.0.1 with these names as SNI.
const (
	gateHost = "gate.test"
	appHost  = "app.test"
)

// startTLSGatehouse starts gatehouse as deployed in production, on
// loopback: tls.mode files with a certificate for gateHost and appHost from
// a fresh test CA, the given tls.min_version, a real Dex as the SSO issuer,
// and one route to an upstream in this test.
func startTLSGatehouse(t *testing.T, minVersion string) (*harness.Gatehouse, *harness.CA) {
	t.Helper()
	ca := harness.NewCA(t)
	certFile, keyFile := ca.Issue(t, gateHost, appHost)
	httpsPort := harness.FreePort(t)
	publicURL := fmt.Sprintf("https://%s:%d", gateHost, httpsPort)
	dex := harness.StartDex(t, harness.DexOptions{
		CA:    ca,
		Users: []harness.DexUser{{Email: "ann@example.com", Password: "pw-ann-tls", Groups: []string{"engineering"}}},
		Clients: []harness.DexClient{{ID: "gatehouse", Secret: "tls-test-secret",
			RedirectURIs: []string{publicURL + "/auth/callback"}}},
	})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(upstream.Close)
	cfg := fmt.Sprintf(`public_url: %s
listen:
  https: "127.0.0.1:%d"
tls:
  mode: files
  min_version: %q
  cert_file: %s
  key_file: %s
sso:
  issuer: %s
  client_id: gatehouse
  client_secret_file: %s
  ca_roots: [%s]
routes:
  - name: app
    host: %s
    upstream: %s
    allow: {groups: [engineering]}
log: {format: json, level: info}
`, publicURL, httpsPort, minVersion, certFile, keyFile,
		dex.Issuer, dex.SecretFile(t, "gatehouse"), dex.CAFile, appHost, upstream.URL)
	return harness.StartGatehouseYAML(t, cfg), ca
}

// TestTLSScanners runs the Debian scanners sslscan and testssl against the
// real binary and judges their reports (see tls_scan_test.go).
func TestTLSScanners(t *testing.T) {
	sslscan := harness.RequireTool(t, "sslscan")
	testssl := harness.RequireTool(t, "testssl")
	g, _ := startTLSGatehouse(t, "1.2")
	_, port, err := net.SplitHostPort(g.HTTPSAddr)
	if err != nil {
		t.Fatal(err)
	}

	for _, host := range []string{gateHost, appHost} {
		t.Run("sslscan/"+host, func(t *testing.T) {
			out := runTool(t, time.Minute, sslscan, "--xml=-", "--no-colour", "--sni-name="+host, "127.0.0.1:"+port)
			if ps := sslscanProblems(out, "1.2"); len(ps) > 0 {
				t.Errorf("sslscan found %d problems:\n%s\nreport:\n%s", len(ps), strings.Join(ps, "\n"), out)
			}
		})
	}

	t.Run("testssl", func(t *testing.T) {
		jsonFile := filepath.Join(t.TempDir(), "testssl.json")
		// -p protocols, -s cipher categories, -f forward secrecy, -U
		// vulnerabilities, -h HTTP headers (HSTS). --ip skips DNS for
		// gate.test; it still sends gate.test as SNI and Host.
		runTool(t, 4*time.Minute, testssl, "--quiet", "--color", "0", "--warnings", "off",
			"--connect-timeout", "10", "--openssl-timeout", "10",
			"--jsonfile", jsonFile, "-p", "-s", "-f", "-U", "-h",
			"--ip", "127.0.0.1", "https://"+gateHost+":"+port+"/")
		out, err := os.ReadFile(jsonFile)
		if err != nil {
			t.Fatalf("testssl wrote no JSON: %v", err)
		}
		if ps := testsslProblems(out, "1.2"); len(ps) > 0 {
			t.Errorf("testssl found %d problems:\n%s", len(ps), strings.Join(ps, "\n"))
		}
	})
}

// TestTLSMin13Scan checks tls.min_version "1.3" with sslscan: TLS 1.2 is
// then refused too.
func TestTLSMin13Scan(t *testing.T) {
	sslscan := harness.RequireTool(t, "sslscan")
	g, _ := startTLSGatehouse(t, "1.3")
	out := runTool(t, time.Minute, sslscan, "--xml=-", "--no-colour", "--sni-name="+gateHost, g.HTTPSAddr)
	if ps := sslscanProblems(out, "1.3"); len(ps) > 0 {
		t.Errorf("sslscan found %d problems:\n%s\nreport:\n%s", len(ps), strings.Join(ps, "\n"), out)
	}
}

// TestTLSGoClients connects with crypto/tls clients: weak offers must be
// refused by the server (a remote alert, not a client-side error), and
// modern ones must verify the chain and negotiate the expected parameters.
func TestTLSGoClients(t *testing.T) {
	g, ca := startTLSGatehouse(t, "1.2")
	cbcSuites := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	}
	refused := []struct {
		name string
		cfg  *tls.Config
	}{
		{"TLS 1.1 only", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}},
		{"TLS 1.0 only", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}},
		{"CBC suites only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: cbcSuites}},
		{"RSA key exchange only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}}},
	}
	for _, tc := range refused {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			cfg := tc.cfg.Clone()
			cfg.RootCAs, cfg.ServerName = ca.Pool(), gateHost
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", g.HTTPSAddr, cfg)
			if err == nil {
				cs := conn.ConnectionState()
				conn.Close()
				t.Fatalf("handshake succeeded with %s %s, want refused", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
			}
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "remote error" {
				t.Errorf("handshake error = %v, want a remote alert from the server", err)
			}
		})
	}

	accepted := []struct {
		name      string
		host      string
		cfg       *tls.Config
		version   uint16
		suite     uint16
		curve     tls.CurveID
		checkHSTS bool
	}{
		{"TLS 1.3 default", gateHost, &tls.Config{}, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256, tls.X25519MLKEM768, true},
		{"TLS 1.3 route host", appHost, &tls.Config{}, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256, tls.X25519MLKEM768, true},
		{"TLS 1.3 X25519 only", gateHost, &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}}, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256, tls.X25519, false},
		{"TLS 1.2 ECDHE-GCM", gateHost, &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}},
			tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.X25519, true},
		{"TLS 1.2 ChaCha20 P-256", appHost, &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
			CurvePreferences: []tls.CurveID{tls.CurveP256}}, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.CurveP256, false},
	}
	for _, tc := range accepted {
		t.Run("accepted/"+tc.name, func(t *testing.T) {
			cfg := tc.cfg.Clone()
			cfg.RootCAs, cfg.ServerName = ca.Pool(), tc.host
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", g.HTTPSAddr, cfg)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			cs := conn.ConnectionState()
			conn.Close()
			if cs.Version != tc.version || cs.CipherSuite != tc.suite || cs.CurveID != tc.curve {
				t.Errorf("negotiated %s %s %v, want %s %s %v", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), cs.CurveID,
					tls.VersionName(tc.version), tls.CipherSuiteName(tc.suite), tc.curve)
			}
			if !tc.checkHSTS {
				return
			}
			checkHSTS(t, g.HTTPSAddr, cfg, tc.host)
		})
	}
}

// checkHSTS fetches https://host/ over cfg and checks that the response
// (a portal page, or the redirect to sign in) carries HSTS with a max-age
// of at least a year.
func checkHSTS(t *testing.T, addr string, cfg *tls.Config, host string) {
	t.Helper()
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: cfg,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get("https://" + host + "/")
	if err != nil {
		t.Fatalf("GET https://%s/: %v", host, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	hsts := resp.Header.Get("Strict-Transport-Security")
	maxAge := -1
	for _, part := range strings.Split(hsts, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "max-age="); ok {
			maxAge, _ = strconv.Atoi(v)
		}
	}
	if maxAge < 365*24*3600 {
		t.Errorf("https://%s/ %s: Strict-Transport-Security = %q, want max-age of at least a year", host, resp.Status, hsts)
	}
}

// runTool runs a scanner with a deadline and returns its stdout; a failure
// to run, a non-zero exit or the deadline fails the test with stderr.
func runTool(t *testing.T, timeout time.Duration, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "TERM=dumb")
	start := time.Now()
	out, err := cmd.Output()
	t.Logf("%s took %v", filepath.Base(name), time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("%s timed out after %v; stderr:\n%s", name, timeout, stderr.String())
	}
	if err != nil {
		t.Fatalf("%s %s: %v; stderr:\n%s\nstdout:\n%s", name, strings.Join(args, " "), err, stderr.String(), out)
	}
	return out
}
