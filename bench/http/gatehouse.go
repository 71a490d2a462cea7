package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/portal"
)

// gatehouseSetup is the config and state one Gatehouse run uses.
type gatehouseSetup struct {
	configPath string
	dataDir    string
	port       int
	cookie     string   // Cookie header value with the minted session
	env        []string // extra environment for the Gatehouse process (e.g. GOGC=200)
}

// writeGatehouseConfig writes a config with one route, host localhost, to
// the upstream, allowing benchUser's group.
func writeGatehouseConfig(dir string, port, adminPort, upPort int, issuer, certFile, keyFile string) (*gatehouseSetup, error) {
	dataDir := filepath.Join(dir, "gatehouse-data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	secret := filepath.Join(dir, "gatehouse-oidc-secret")
	if err := os.WriteFile(secret, []byte("gatehouse-bench-secret\n"), 0o600); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`public_url: https://gate.localhost:%[1]d
listen:
  https: "127.0.0.1:%[1]d"
  admin: "127.0.0.1:%[2]d"
tls:
  mode: files
  cert_file: %[3]s
  key_file: %[4]s
data_dir: %[5]s
sso:
  issuer: %[6]s
  client_id: gatehouse
  client_secret_file: %[7]s
  ca_roots: [%[3]s]
mfa:
  max_age: 12h
routes:
  - name: bench
    host: localhost
    upstream: http://127.0.0.1:%[8]d
    allow: {groups: [%[9]s]}
admins: {groups: [bench-admins]}
log: {level: warn}
`, port, adminPort, certFile, keyFile, dataDir, issuer, secret, upPort, benchUser.Groups[0])
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	return &gatehouseSetup{configPath: path, dataDir: dataDir, port: port}, nil
}

// mint creates the session (before any Gatehouse process holds the store).
func (g *gatehouseSetup) mint(ctx context.Context) error {
	v, err := mintSession(ctx, g.dataDir, fmt.Sprintf("https://gate.localhost:%d", g.port), "localhost")
	if err != nil {
		return fmt.Errorf("mint session: %w", err)
	}
	g.cookie = portal.SessionCookie + "=" + v
	return nil
}

// url is what wrk requests.
func (g *gatehouseSetup) url() string { return fmt.Sprintf("https://localhost:%d/", g.port) }

// errNoRoutes means the binary runs but does not serve routes (not wired).
var errNoRoutes = fmt.Errorf("gatehouse serves no routes")

// verify checks that Gatehouse is the gate: without the cookie it sends
// the browser to sign in, with it the upstream's page arrives.
func (g *gatehouseSetup) verify(c *http.Client, p *proc) error {
	noFollow := *c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	err := waitHTTP(&noFollow, g.url(), 20*time.Second, nil, func(res *http.Response, body []byte) error {
		switch {
		case res.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "not available"):
			return errNoRoutes
		case res.StatusCode != http.StatusFound || !strings.Contains(res.Header.Get("Location"), "gate.localhost"):
			return fmt.Errorf("without a session: %s (Location %q), want 302 to the portal", res.Status, res.Header.Get("Location"))
		}
		return nil
	})
	if err != nil {
		if strings.Contains(err.Error(), errNoRoutes.Error()) {
			return errNoRoutes
		}
		return fmt.Errorf("%w\n%s", err, p.tail())
	}
	return checkBody(c, g.url(), []string{"Cookie: " + g.cookie})
}

// checkBody requires a 200 with the upstream's page.
func checkBody(c *http.Client, url string, headers []string) error {
	h := http.Header{}
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, ": ")
		h.Add(k, v)
	}
	return waitHTTP(c, url, 20*time.Second, h, func(res *http.Response, body []byte) error {
		if res.StatusCode != http.StatusOK || string(body) != upstreamBody {
			return fmt.Errorf("%s: %s, want 200 with the upstream page", url, res.Status)
		}
		return nil
	})
}

// startGatehouse starts the real binary; if it does not serve routes yet,
// it falls back to the in-process composition (this program's "inproc"
// mode) and says so in mode.
func startGatehouse(dir, bin, self string, g *gatehouseSetup, c *http.Client, forceInproc bool) (p *proc, mode string, err error) {
	if !forceInproc {
		p, err = start(dir, "gatehouse", g.env, bin, "serve", "--config", g.configPath)
		if err != nil {
			return nil, "", err
		}
		err = g.verify(c, p)
		if err == nil {
			return p, "binary", nil
		}
		p.stop()
		if err != errNoRoutes {
			return nil, "", fmt.Errorf("gatehouse binary: %w", err)
		}
		fmt.Println("note: the gatehouse binary does not serve routes yet (buildApps not wired); measuring the in-process composition instead")
	}
	p, err = startInproc(dir, self, g, "")
	if err != nil {
		return nil, "", err
	}
	if err := g.verify(c, p); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("gatehouse in-process: %w", err)
	}
	return p, "in-process", nil
}

// startInproc runs this program's inproc mode on g's config.
func startInproc(dir, self string, g *gatehouseSetup, profile string) (*proc, error) {
	args := []string{"inproc", "--config", g.configPath}
	if profile != "" {
		args = append(args, "--cpuprofile", profile)
	}
	return start(dir, "gatehouse-inproc", g.env, self, args...)
}
