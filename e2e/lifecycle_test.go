package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// minimalConfig is the smallest config a user may write for one app and
// one target: no mfa block, no admin listener, no reviewers. Every default
// the README documents must hold here (record: required among them).
const minimalConfig = `public_url: %s
listen:
  https: %q
  ssh: "127.0.0.1:0"
tls: {mode: files, cert_file: %s, key_file: %s}
data_dir: /placeholder
sso:
  issuer: %s
  client_id: gatehouse
  client_secret_file: %s
  ca_roots: [%s]
routes:
  - name: app
    host: app.test
    upstream: %s
    allow: {groups: [eng]}
targets:
  - name: web
    address: %q
    host_key: %q
    logins: [%s]
    allow: {groups: [sre-web]}
`

// TestMinimalConfigAndReload is issue 10's acceptance test. With the
// minimal config, a new person reaches the app after SSO and enrolment
// with no step-up loop (the 12h mfa.max_age default holds for the web door
// too), and an SSH connection approved the same way opens a shell. Then a
// SIGHUP that drops her group from the target ends her live SSH session
// within 2 s and refuses new ones, while a reload that changes listen.ssh
// is refused whole.
func TestMinimalConfigAndReload(t *testing.T) {
	for _, tool := range []string{"ssh", "ssh-keygen"} {
		harness.RequireTool(t, tool)
	}
	ca := harness.NewCA(t)
	port := strconv.Itoa(harness.FreePort(t))
	addr := "127.0.0.1:" + port
	portal := "https://gate.test:" + port
	dex := harness.StartDex(t, harness.DexOptions{
		CA:    ca,
		Users: []harness.DexUser{{Email: sshEmail, Password: sshPassword, Groups: []string{"eng", "sre-web"}}},
		Clients: []harness.DexClient{{ID: "gatehouse", Secret: "gatehouse-secret-for-tests",
			RedirectURIs: []string{portal + "/auth/callback"}}},
	})
	up := startBTUpstream(t, portal, addr, ca, "app")
	target := harness.StartSSHD(t, harness.SSHDOptions{TrustedUserCAKeys: randomKeyLine(t)})
	cert, key := ca.Issue(t, "gate.test", "app.test")
	cfg := fmt.Sprintf(minimalConfig, portal, addr, cert, key, dex.Issuer, dex.SecretFile(t, "gatehouse"), dex.CAFile,
		up.URL, target.Addr, target.HostKeyLine, target.User)
	g := harness.StartGatehouseYAML(t, cfg)
	e := newSSHEnvFor(t, g, target)
	e.tab = harness.NewBrowser(t, harness.BrowserOptions{CA: ca}).NewTab(t)
	appURL := "https://app.test:" + port

	step(t, "the app opens after SSO and enrolment, with no step-up", func() {
		e.tab.Navigate(appURL + "/first?x=1")
		e.tab.SignIn(sshEmail, sshPassword, appURL+"/first?x=1")
		e.tab.WaitText("assertion=verified")
		// A second visit must not ask for the key again: the 12h default.
		e.tab.Navigate(appURL + "/second")
		e.tab.WaitText("uri=/second")
		if loc := e.tab.Location(); !strings.HasPrefix(loc, appURL+"/second") {
			t.Fatalf("second visit landed on %s, want the app", loc)
		}
		if up.conns.Load() == 0 {
			t.Fatal("no connection from Gatehouse to the upstream is open after the visits (the reload step below needs one)")
		}
	})

	p := []string{"-p", e.sshPort}
	dest := e.dest(e.login, "web")
	step(t, "an SSH connection approved the same way opens a shell", func() {
		r, code := e.run(t, true, "echo shell=$((40+2))\nexit 0\n", "ssh", append(p, "-tt", dest)...)
		if code != 0 || !strings.Contains(r.stdout.String(), "shell=42") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
		}
	})

	live := e.start(t, "", "ssh", append(p, "-o", "BatchMode=yes", dest, "echo live; exec sleep 300")...)
	waitOutput(t, live, "live\n")

	step(t, "a reload that changes listen.ssh is refused whole", func() {
		old := readFile(t, g.ConfigPath)
		other := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
		changed := strings.Replace(old, g.SSHAddr, other, 1)
		// The same reload also drops her group: it must not be applied either.
		changed = strings.ReplaceAll(changed, "sre-web", "sre-gone")
		if changed == old || !strings.Contains(changed, other) {
			t.Fatalf("could not edit the config:\n%s", old)
		}
		writeTestFile(t, g.ConfigPath, changed)
		if err := g.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitAudit(t, g, `"type":"config.reload".*"decision":"deny".*listen\.ssh`)
		writeTestFile(t, g.ConfigPath, old)
		select {
		case <-live.done:
			t.Fatalf("a refused reload ended the live session: %q", live.stderr.String())
		case <-time.After(time.Second):
		}
		if r, code := e.run(t, false, "", "ssh", append(p, "-o", "BatchMode=yes", dest, "echo still")...); code != 0 || r.stdout.String() != "still\n" {
			t.Fatalf("after the refused reload: exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
		}
	})

	step(t, "a reload that drops her group ends her live session and refuses new ones", func() {
		writeTestFile(t, g.ConfigPath, strings.ReplaceAll(readFile(t, g.ConfigPath), "sre-web", "sre-gone"))
		sent := time.Now()
		if err := g.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		select {
		case <-live.done:
			if d := time.Since(sent); d > 2*time.Second {
				t.Errorf("live session ended %v after the reload, want within 2s", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("live session still open 5s after the reload; stderr %q", live.stderr.String())
		}
		if !strings.Contains(live.stderr.String(), "gatehouse:") {
			t.Errorf("no banner on the ended session; stderr %q", live.stderr.String())
		}
		r, code := e.run(t, false, "", "ssh", append(p, "-o", "BatchMode=yes", dest, "true")...)
		if code != 255 || !strings.Contains(r.stderr.String(), "gatehouse:") {
			t.Fatalf("new connection after the reload: exit %d, stderr %q", code, r.stderr.String())
		}
		waitAudit(t, g, `"type":"config.reload".*"decision":"allow"`)
		waitAudit(t, g, `"type":"ssh\.[a-z_.]+".*`+regexp.QuoteMeta(sshEmail)+`.*(reload|policy)`)
	})

	step(t, "the applied reload let go of the replaced route's upstream connections", func() {
		// The app visits above left Gatehouse's connection to the upstream
		// in its pool; the reload built a new web side, and the old one
		// closes what it held instead of leaving it for the idle timeout.
		for deadline := time.Now().Add(5 * time.Second); up.conns.Load() != 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d upstream connections still open 5s after the reload", up.conns.Load())
			}
		}
	})
}

// waitOutput waits until r's stdout equals want.
func waitOutput(t *testing.T, r *sshRun, want string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if r.stdout.String() == want {
			return
		}
		select {
		case <-r.done:
			t.Fatalf("%v exited: stdout %q, stderr %q", r.cmd.Args, r.stdout.String(), r.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%v: stdout %q, want %q; stderr %q", r.cmd.Args, r.stdout.String(), want, r.stderr.String())
}

// waitAudit waits until a line of g's audit log matches pattern.
func waitAudit(t *testing.T, g *harness.Gatehouse, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	var data []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		data, _ = os.ReadFile(filepath.Join(g.DataDir, "audit", "audit.log"))
		for _, l := range strings.Split(string(data), "\n") {
			if re.MatchString(l) {
				return
			}
		}
	}
	t.Fatalf("no audit line matches %s; log:\n%s", pattern, data)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
