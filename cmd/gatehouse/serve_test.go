package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/internal/testlog"
)

// httpsStatus returns the status of GET https://host/ sent to addr, without
// verifying the (self-signed) certificate.
func httpsStatus(t *testing.T, addr, host string) int {
	t.Helper()
	code, _ := httpsGet(t, addr, host, "/")
	return code
}

// httpsGet returns the status and body of GET https://host+path sent to
// addr, without verifying the (self-signed) certificate or following
// redirects.
func httpsGet(t *testing.T, addr, host, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("https://" + host + path)
	if err != nil {
		t.Fatalf("GET https://%s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET https://%s%s: %v", host, path, err)
	}
	return resp.StatusCode, string(b)
}

// sighup sends SIGHUP to this process and waits until the reload it causes
// has been audited (the audit log grows by one line).
func sighup(t *testing.T, auditFile string) {
	t.Helper()
	before := countLines(t, auditFile)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for countLines(t, auditFile) == before {
		if time.Now().After(deadline) {
			t.Fatal("no audit event after SIGHUP")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func countLines(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// startWatch passes records on and reports the admin address from the
// "Gatehouse started." line, which is how an operator learns that serve is
// up and where its ephemeral listeners are. Sub-loggers made with With lose
// the watch, which is fine: the start line is logged on the root logger.
type startWatch struct {
	slog.Handler
	admin chan string // buffered(1): the first start line's admin address
}

func (h startWatch) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "Gatehouse started." {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "admin" {
				select {
				case h.admin <- a.Value.String():
				default:
				}
			}
			return true
		})
	}
	return h.Handler.Handle(ctx, r)
}

// startServer runs serve in-process with the config at path, waits for its
// start line and then until /readyz answers 200, as an operator would. stop
// ends it (as SIGTERM does) and returns what run returned.
func startServer(t *testing.T, path string) (s *server, stop func() error) {
	t.Helper()
	cfg, ok := loadConfig(path, io.Discard)
	if !ok {
		t.Fatal("test config invalid")
	}
	var level slog.LevelVar
	watch := startWatch{Handler: newLogger(cfg.Log, testlog.Writer(t), &level).Handler(), admin: make(chan string, 1)}
	s = &server{path: path, level: &level, stdout: io.Discard, logger: slog.New(watch)}
	s.cfg.Store(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.run(ctx) }()
	var admin string
	select {
	case admin = <-watch.admin:
	case err := <-ran:
		cancel()
		t.Fatalf("run = %v before start", err)
	}
	stop = func() error {
		cancel()
		return <-ran
	}

	// Ready once the listeners serve (Serve runs just after start).
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			stop()
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("/readyz = %d, want 200", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s, stop
}

func TestServeReloadAndStop(t *testing.T) {
	// Keep SIGHUP from killing the test binary whatever happens.
	guard := make(chan os.Signal, 4)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	dataDir := filepath.Join(t.TempDir(), "data")
	path := writeConfig(t, validYAML(dataDir))
	s, stop := startServer(t, path)
	cfg := s.cfg.Load()
	https := s.front.HTTPSAddr().String()
	if code := httpsStatus(t, https, "gate.test"); code != 200 {
		t.Errorf("portal = %d, want 200", code)
	}
	if code := httpsStatus(t, https, "app.test"); code != 421 {
		t.Errorf("app.test before reload = %d, want 421", code)
	}
	auditFile := filepath.Join(dataDir, "audit", "audit.log")

	// An invalid config is refused and the old one stays in force.
	if err := os.WriteFile(path, []byte(validYAML(dataDir)+"routes: [{name: app, host: app.test, upstream: 'ftp://x'}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sighup(t, auditFile)
	if s.cfg.Load() != cfg {
		t.Errorf("config replaced by an invalid one")
	}
	if code := httpsStatus(t, https, "app.test"); code != 421 {
		t.Errorf("app.test after refused reload = %d, want 421", code)
	}

	// A valid config adding a route is applied: a request without a session
	// is sent to sign in.
	idp := fakeIssuer(t)
	if err := os.WriteFile(path, []byte(validYAML(dataDir)+idp.ssoYAML+`routes: [{name: app, host: app.test, upstream: "http://127.0.0.1:9", allow: {groups: [eng]}}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	sighup(t, auditFile)
	if code := httpsStatus(t, https, "app.test"); code != http.StatusFound {
		t.Errorf("app.test after reload = %d, want 302 to sign in", code)
	}

	if err := stop(); err != nil {
		t.Fatalf("run = %v", err)
	}

	// The audit log holds the lifecycle, and its chain verifies.
	b, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	type rec struct{ Type, Decision string }
	var got []rec
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var ev audit.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		got = append(got, rec{ev.Type, ev.Decision})
	}
	want := []rec{{"gatehouse.start", "allow"}, {"config.reload", "deny"}, {"config.reload", "allow"}, {"gatehouse.stop", ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit events (-want +got):\n%s", diff)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"audit", "verify", "--config", path}, &stdout, &stderr); code != 0 || stdout.String() != "4 lines, chain intact\n" {
		t.Errorf("audit verify = %d %q %q, want 0 \"4 lines, chain intact\"", code, &stdout, &stderr)
	}

	// An edited line is found.
	edited := bytes.Replace(b, []byte(`"decision":"deny"`), []byte(`"decision":"allow"`), 1)
	if bytes.Equal(edited, b) {
		t.Fatal("test did not edit the audit log")
	}
	if err := os.WriteFile(auditFile, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"audit", "verify", "--config", path}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "line 3") {
		t.Errorf("audit verify of an edited log = %d %q %q, want 1 naming line 3", code, &stdout, &stderr)
	}
}

// TestServeIdPDown checks that serve starts while the IdP does not answer:
// it is needed only to sign in. App routes still send people to sign in,
// and the sign-in answers 503 (fail closed, no redirect loop).
func TestServeIdPDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "https://" + ln.Addr().String()
	ln.Close()
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	path := writeConfig(t, validYAML(dataDir)+`sso: {issuer: "`+issuer+`", client_id: gh, client_secret_file: `+secretFile+`}
routes: [{name: app, host: app.test, upstream: "http://127.0.0.1:9", allow: {groups: [eng]}}]
`)
	s, stop := startServer(t, path)
	https := s.front.HTTPSAddr().String()
	if code := httpsStatus(t, https, "app.test"); code != http.StatusFound {
		t.Errorf("app.test without a session = %d, want 302 to sign in", code)
	}
	code, body := httpsGet(t, https, "gate.test", "/auth/login?rd=https%3A%2F%2Fapp.test%2F")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "The identity provider is not answering") {
		t.Errorf("sign-in with the IdP down = %d %q, want 503 with the notice", code, body)
	}
	if err := stop(); err != nil {
		t.Fatalf("run = %v", err)
	}
}

func TestServeRefusesLooseDataDir(t *testing.T) {
	dataDir := t.TempDir()
	if err := os.Chmod(dataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, validYAML(dataDir))
	var stdout, stderr bytes.Buffer
	if code := run([]string{"serve", "--config", path}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "has mode 0750") {
		t.Errorf("serve with a 0750 data_dir = %d, stderr %q; want 1 and the mode named", code, &stderr)
	}
}

// issuer is an OIDC issuer that answers discovery, enough for serve to
// build its portal; sign-in itself is covered by the e2e tests with Dex.
type issuer struct{ ssoYAML string }

func fakeIssuer(t *testing.T) issuer {
	t.Helper()
	var url string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                url,
			"authorization_endpoint":                url + "/auth",
			"token_endpoint":                        url + "/token",
			"jwks_uri":                              url + "/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	}))
	t.Cleanup(srv.Close)
	url = srv.URL
	dir := t.TempDir()
	caFile := filepath.Join(dir, "idp-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return issuer{ssoYAML: "sso: {issuer: \"" + url + "\", client_id: gh, client_secret_file: " + secretFile + ", ca_roots: [" + caFile + "]}\n"}
}
