package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// haConfig is one replica's config; the replicas differ only in
// listen.https (and in data_dir, which the harness sets). Both share the
// Redis, the master key file and the recordings directory.
const haConfig = `public_url: %s
listen:
  https: "127.0.0.1:%s"
  ssh: "127.0.0.1:0"
  admin: "127.0.0.1:0"
tls: {mode: files, cert_file: %s, key_file: %s}
data_dir: /placeholder
redis: {addr: %q}
secrets: {master_key_file: %s}
recording: {dir: %s}
sso:
  issuer: %s
  client_id: gatehouse
  client_secret_file: %s
  ca_roots: [%s]
routes:
  - name: app
    host: app.test
    upstream: %s
    allow: {groups: [sre]}
targets:
  - name: web
    address: %q
    host_key: %q
    logins: [%s]
    allow: {groups: [sre]}
  - name: every
    address: %q
    host_key: %q
    logins: [%s]
    allow: {groups: [sre]}
    mfa: every_connection
`

// haEnv is two Gatehouse replicas (A and B) on one real redis-server.
type haEnv struct {
	a, b         *harness.Gatehouse
	portA, portB string
	redis        *harness.Redis
	ca           *harness.CA
	ssh          *sshEnv // the OpenSSH client, pointed at replica B
	cfg          func(port, dataDir string) string
	secretsDir   string
	browser      *harness.Browser
}

func startHAEnv(t *testing.T) *haEnv {
	t.Helper()
	for _, tool := range []string{"ssh", "ssh-keygen"} {
		harness.RequireTool(t, tool)
	}
	e := &haEnv{ca: harness.NewCA(t)}
	e.redis = harness.StartRedisWith(t, harness.RedisOptions{Persist: true})
	e.portA, e.portB = strconv.Itoa(harness.FreePort(t)), strconv.Itoa(harness.FreePort(t))
	// public_url is replica A: approval links and sign-ins go there, as
	// they would go to whichever replica the load balancer picks.
	portal := "https://gate.test:" + e.portA
	dex := harness.StartDex(t, harness.DexOptions{
		CA:    e.ca,
		Users: []harness.DexUser{{Email: sshEmail, Password: sshPassword, Groups: []string{"sre"}}},
		Clients: []harness.DexClient{{ID: "gatehouse", Secret: "gatehouse-secret-for-tests",
			RedirectURIs: []string{portal + "/auth/callback"}}},
	})
	up := startBTUpstream(t, portal, "127.0.0.1:"+e.portA, e.ca, "app")
	target := harness.StartSSHD(t, harness.SSHDOptions{TrustedUserCAKeys: randomKeyLine(t)})
	cert, key := e.ca.Issue(t, "gate.test", "app.test")

	// What every replica shares besides Redis: the master key (kept out of
	// data_dir) and the recordings directory.
	e.secretsDir = t.TempDir()
	masterKey := filepath.Join(e.secretsDir, "master.key")
	raw := make([]byte, 32)
	rand.Read(raw)
	writeFile0600(t, masterKey, base64.StdEncoding.EncodeToString(raw)+"\n")
	recDir := filepath.Join(e.secretsDir, "recordings")
	if err := os.Mkdir(recDir, 0o700); err != nil {
		t.Fatal(err)
	}
	secretFile := dex.SecretFile(t, "gatehouse")
	e.cfg = func(port, _ string) string {
		return fmt.Sprintf(haConfig, portal, port, cert, key, e.redis.Addr, masterKey, recDir,
			dex.Issuer, secretFile, dex.CAFile, up.URL,
			target.Addr, target.HostKeyLine, target.User, target.Addr, target.HostKeyLine, target.User)
	}
	e.a = harness.StartGatehouseYAML(t, e.cfg(e.portA, ""))
	e.b = harness.StartGatehouseYAML(t, e.cfg(e.portB, ""))
	// ssh-config run against A must give what B presents: one host CA and
	// one user CA for every replica.
	e.ssh = newSSHEnvFor(t, e.a, target)
	_, e.ssh.sshPort, _ = strings.Cut(e.b.SSHAddr, ":")
	e.ssh.g = e.b
	// Two replicas, Dex, sshd and Redis share two cores: give each browser
	// step more time than the default.
	e.browser = harness.NewBrowser(t, harness.BrowserOptions{CA: e.ca, Timeout: time.Minute})
	e.ssh.tab = e.browser.NewTab(t)
	return e
}

// TestTwoReplicasOnRedis is issue 8's acceptance test for shared state:
// two replicas on one real redis-server behave as one gateway, a lock cuts
// access on both within a second, and losing Redis fails closed and heals
// by itself.
func TestTwoReplicasOnRedis(t *testing.T) {
	e := startHAEnv(t)
	appA, appB := "https://app.test:"+e.portA, "https://app.test:"+e.portB
	tab := e.ssh.tab
	p := []string{"-p", e.ssh.sshPort}

	step(t, "a login made on replica A is valid on replica B", func() {
		tab.Navigate(appA + "/on-a")
		tab.SignIn(sshEmail, sshPassword, appA+"/on-a")
		tab.WaitText("assertion=verified")
		tab.Navigate(appB + "/on-b")
		tab.WaitText("uri=/on-b")
		if loc := tab.Location(); !strings.HasPrefix(loc, appB+"/on-b") {
			t.Fatalf("replica B sent the signed-in person to %s, want its app", loc)
		}
	})

	step(t, "an approval granted through A lets a connection through B proceed, once", func() {
		r := e.ssh.start(t, "", "ssh", append(p, "-o", "BatchMode=no", e.ssh.dest(e.ssh.login, "every"), "echo via-b")...)
		a := r.approval(t)
		if !strings.HasPrefix(a.URL, "https://gate.test:"+e.portA+"/") {
			t.Fatalf("approval URL %s is not on replica A (public_url)", a.URL)
		}
		tab.ApproveSSH(a, sshEmail, sshPassword)
		if code := r.wait(t); code != 0 || r.stdout.String() != "via-b\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
		}
		// The used approval is gone on every replica: its page no longer
		// offers to approve, and the next connection to a per-connection
		// target asks again.
		tab.Navigate(a.URL)
		tab.WaitText("expired or was already used")
		r2 := e.ssh.start(t, "", "ssh", append(p, "-o", "BatchMode=no", e.ssh.dest(e.ssh.login, "every"), "echo again")...)
		if a2 := r2.approval(t); a2.URL == a.URL {
			t.Fatalf("second connection reused approval %s", a.URL)
		}
		_ = r2.cmd.Process.Kill()
	})

	step(t, "gatehouse lock against the shared store ends SSH on B and the browser session on A within a second", func() {
		// A key bound by an approval on target web (mfa max_age).
		r, code := e.ssh.run(t, true, "", "ssh", append(p, "-o", "BatchMode=no", e.ssh.dest(e.ssh.login, "web"), "echo bound")...)
		if code != 0 {
			t.Fatalf("bind the key: exit %d, stderr %q", code, r.stderr.String())
		}
		live := e.ssh.start(t, "", "ssh", append(p, "-o", "BatchMode=yes", e.ssh.dest(e.ssh.login, "web"), "echo live; exec sleep 300")...)
		waitOutput(t, live, "live\n")
		client := cookieClient(t, e, tab)
		if code := getStatus(t, client, appA+"/before-lock"); code != http.StatusOK {
			t.Fatalf("before the lock replica A answered %d, want 200", code)
		}
		// An operator's machine: the same config, its own empty data_dir,
		// no server: the command opens Redis directly.
		ops := filepath.Join(t.TempDir(), "ops")
		if err := os.Mkdir(ops, 0o700); err != nil {
			t.Fatal(err)
		}
		opsCfg := filepath.Join(ops, "gatehouse.yaml")
		writeFile0600(t, opsCfg, strings.Replace(e.cfg(e.portA, ""), "data_dir: /placeholder", "data_dir: "+filepath.Join(ops, "data"), 1))
		res := harness.RunBinary(t, "lock", "--config", opsCfg, "--reason", "incident 42", sshEmail)
		locked := time.Now()
		if res.ExitCode != 0 {
			t.Fatalf("gatehouse lock: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
		}
		select {
		case <-live.done:
			d := time.Since(locked)
			if d > time.Second {
				t.Errorf("SSH session on B ended %v after the lock, want within 1s", d)
			}
			t.Logf("SSH session on B ended %v after gatehouse lock returned", d)
		case <-time.After(5 * time.Second):
			t.Fatalf("SSH session on B still open 5s after the lock")
		}
		if !strings.Contains(live.stderr.String(), "locked") {
			t.Errorf("the ended session did not say why: %q", live.stderr.String())
		}
		var last int
		for deadline := locked.Add(time.Second); ; {
			if last = getStatus(t, client, appA+"/after-lock"); last != http.StatusOK {
				t.Logf("replica A refused the locked session (%d) %v after gatehouse lock returned", last, time.Since(locked))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica A still served the locked person's session 1s after the lock")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if code := getStatus(t, client, appB+"/after-lock"); code == http.StatusOK {
			t.Errorf("replica B still serves the locked person's session")
		}
		// The operator's own audit log (and its sinks) records who did it.
		opsAudit := readFile(t, filepath.Join(ops, "data", "audit", "audit.log"))
		if !regexp.MustCompile(`"type":"[a-z.]*lock".*incident 42`).MatchString(opsAudit) {
			t.Errorf("no lock event with the reason in the operator's audit log:\n%s", opsAudit)
		}
		if res := harness.RunBinary(t, "unlock", "--config", opsCfg, sshEmail); res.ExitCode != 0 {
			t.Fatalf("gatehouse unlock: exit %d\n%s", res.ExitCode, res.Stderr)
		}
	})

	step(t, "Redis stopped: readiness false on both, new logins fail closed", func() {
		e.redis.Stop()
		waitReady(t, e.a, false)
		waitReady(t, e.b, false)
		fresh := e.ssh.withNewKey(t, "down_key")
		r, code := fresh.run(t, false, "", "ssh", append(p, "-o", "BatchMode=no", fresh.dest(fresh.login, "web"), "true")...)
		if code == 0 {
			t.Fatalf("an SSH login went through with Redis down: stdout %q", r.stdout.String())
		}
		if !strings.Contains(r.stderr.String(), "gatehouse:") {
			t.Errorf("SSH refusal with Redis down gave no clear message: %q", r.stderr.String())
		}
		tab2 := e.browser.NewContext(t)
		tab2.Navigate(appA + "/while-down")
		// The gate sends her to sign in, and the portal cannot start a
		// sign-in it could not finish: a 503 page that says so.
		tab2.WaitText("Gatehouse is unavailable")
		if text := tab2.Text(); strings.Contains(text, "uri=/while-down") {
			t.Fatal("the app opened for a browser without a session while Redis was down")
		}
	})

	step(t, "Redis back: service returns without restarting Gatehouse", func() {
		e.redis.Restart(t)
		waitReady(t, e.a, true)
		waitReady(t, e.b, true)
		r, code := e.ssh.run(t, true, "", "ssh", append(p, "-o", "BatchMode=no", e.ssh.dest(e.ssh.login, "every"), "echo back")...)
		if code != 0 || r.stdout.String() != "back\n" {
			t.Fatalf("after Redis returned: exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
		}
		// The sign-in goes through the portal (public_url, replica A's
		// port here; one address behind a load balancer in production).
		tab.Navigate(appA + "/back")
		tab.SignIn(sshEmail, sshPassword, appA+"/back")
		tab.WaitText("uri=/back")
		tab.Navigate(appB + "/back-on-b")
		tab.WaitText("uri=/back-on-b")
	})

	step(t, "no private key in the clear in either data_dir or in a Redis DUMP", func() {
		for _, g := range []*harness.Gatehouse{e.a, e.b} {
			scanForKeys(t, g.DataDir)
		}
		scanRedisForKeys(t, e.redis.Addr)
	})
}

// privateKeyMarkers are strings that only a private key in the clear
// contains.
var privateKeyMarkers = []string{"PRIVATE KEY", "AGE-SECRET-KEY-", "openssh-key-v1"}

// scanForKeys fails the test if a file under dir holds a private key in
// the clear.
func scanForKeys(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&os.ModeSocket != 0 {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		for _, m := range privateKeyMarkers {
			if strings.Contains(string(b), m) {
				t.Errorf("%s holds %q in the clear", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no file scanned in %s", dir)
	}
}

// scanRedisForKeys DUMPs every key in Redis and fails the test if one
// holds a private key in the clear.
func scanRedisForKeys(t *testing.T, addr string) {
	t.Helper()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var sawKeys bool
	for _, k := range keys {
		if strings.Contains(k, "key") {
			sawKeys = true
		}
		dump, err := c.Dump(ctx, k).Result()
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		for _, m := range privateKeyMarkers {
			if strings.Contains(dump, m) {
				t.Errorf("Redis key %s holds %q in the clear", k, m)
			}
		}
	}
	if len(keys) == 0 || !sawKeys {
		t.Fatalf("Redis holds %d keys and none of the key entries: %q", len(keys), keys)
	}
}

// cookieClient is an HTTP client that presents the tab's cookies to the
// replicas, without following redirects, so that a test can poll whether a
// session is still admitted faster than a browser navigation.
func cookieClient(t *testing.T, e *haEnv, tab *harness.Tab) *http.Client {
	t.Helper()
	var header []string
	for _, c := range tab.Cookies() {
		if c.Domain == "app.test" {
			header = append(header, c.Name+"="+c.Value)
		}
	}
	if len(header) == 0 {
		t.Fatal("the tab holds no app.test cookie")
	}
	cookie := strings.Join(header, "; ")
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool()},
		// Every *.test name is a replica on loopback; TLS still checks
		// the name.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return dialer.DialContext(ctx, network, "127.0.0.1:"+port)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Timeout:       5 * time.Second,
		Transport:     cookieTransport{cookie: cookie, rt: tr},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// cookieTransport sends every request with one Cookie header.
type cookieTransport struct {
	cookie string
	rt     http.RoundTripper
}

func (c cookieTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Cookie", c.cookie)
	return c.rt.RoundTrip(r)
}

// getStatus GETs url and returns the status code.
func getStatus(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady waits until g's /readyz says ready (or not ready).
func waitReady(t *testing.T, g *harness.Gatehouse, ready bool) {
	t.Helper()
	var code int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + g.AdminAddr + "/readyz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		code = resp.StatusCode
		if (code == http.StatusOK) == ready {
			return
		}
	}
	t.Fatalf("/readyz of %s = %d, want ready=%v", g.AdminAddr, code, ready)
}

func writeFile0600(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
