package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// TestMakeDemo runs scripts/demo.sh (what `make demo` runs) and does what
// its banner tells a newcomer: opens the demo app in Chromium with the
// printed --ignore-certificate-errors-spki-list, signs in at Dex with the
// printed password, enrols a security key (virtual authenticator), reaches
// the app with the path and query intact and a verified JWT assertion,
// signs in again in a fresh browser context with the same key, then (when
// the SSH target is up) runs the printed ssh command and approves it in
// the browser. Finally it presses Ctrl-C (SIGINT to the script's process
// group, as a terminal does) and checks that everything stopped and the
// temporary directory is gone.
func TestMakeDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three binaries and starts five programs")
	}
	root := harness.RepoRoot(t)
	tmp := t.TempDir()
	var out syncBuffer
	cmd := exec.Command("bash", "scripts/demo.sh")
	cmd.Dir = root
	// install-deps ran before the e2e tests (make e2e depends on deps).
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "GATEHOUSE_DEMO_SKIP_DEPS=1")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error // set before exited is closed
	go func() { exitErr = cmd.Wait(); close(exited) }()
	stopped := false
	// A terminal's Ctrl-C is SIGINT to the foreground process group. If
	// this test process was started with SIGINT ignored (a background job
	// of a non-interactive shell), bash could not trap it: use SIGTERM,
	// which the script handles the same way.
	stopSig := syscall.SIGINT
	if signal.Ignored(syscall.SIGINT) {
		stopSig = syscall.SIGTERM
	}
	stop := func() error {
		syscall.Kill(-cmd.Process.Pid, stopSig)
		stopped = true
		select {
		case <-exited:
		case <-time.After(90 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		return exitErr
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
		t.Logf("demo output:\n%s", out.String())
	})

	banner := waitFor(t, &out, exited, "Ctrl-C stops everything", 5*time.Minute)
	envFiles, _ := filepath.Glob(filepath.Join(tmp, "gatehouse-demo.*", "demo.env"))
	if len(envFiles) != 1 {
		t.Fatalf("demo.env files: %q, want one", envFiles)
	}
	env := readEnv(t, envFiles[0])
	demoDir := env["DEMO_DIR"]
	for _, want := range []string{env["APP_URL"], env["DEMO_EMAIL"], env["DEMO_PASSWORD"], env["PUBLIC_URL"] + "/review/"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q", want)
		}
	}
	spki := regexp.MustCompile(`--ignore-certificate-errors-spki-list=(\S+)`).FindStringSubmatch(banner)
	if spki == nil {
		t.Fatalf("banner has no --ignore-certificate-errors-spki-list")
	}

	// The browser trusts exactly what the banner says; *.localhost resolves
	// to loopback in Chromium itself, so no resolver rules are needed.
	b := harness.NewBrowser(t, harness.BrowserOptions{
		TrustSPKI:         strings.Split(spki[1], ","),
		HostResolverRules: "MAP nothing.invalid 127.0.0.1",
	})
	tab := b.NewTab(t)
	want := env["APP_URL"] + "tour?step=1&x=%C3%A9"
	tab.Navigate(want)
	tab.DexLogin(env["DEMO_EMAIL"], env["DEMO_PASSWORD"])
	tab.WaitURLPrefix(env["PUBLIC_URL"] + "/")
	tab.Click("#webauthn-start") // enrol the (virtual) security key
	tab.WaitURLPrefix(want)
	tab.WaitText("Gatehouse vouches for you")
	if text := tab.Text(); !strings.Contains(text, "/tour") || !strings.Contains(text, "step=1&x=%C3%A9") {
		t.Errorf("demo app did not get the path and query intact:\n%s", text)
	}

	// A second sign-in with the same key, in a fresh browser context.
	tab2 := b.NewContext(t)
	tab2.Navigate(env["APP_URL"])
	tab2.SignIn(env["DEMO_EMAIL"], env["DEMO_PASSWORD"], env["APP_URL"])
	tab2.WaitText("Gatehouse vouches for you")

	if strings.Contains(banner, "ssh -p") {
		demoSSH(t, tab2, env)
	} else {
		t.Logf("SSH part NOT covered: the demo skipped its SSH target:\n%s", grepLine(out.String(), "skipping the SSH target"))
	}

	// Ctrl-C.
	err := stop()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 128+int(stopSig) {
		t.Errorf("demo.sh after %v: %v, want exit status %d", stopSig, err, 128+int(stopSig))
	}
	if _, err := os.Stat(demoDir); !os.IsNotExist(err) {
		t.Errorf("demo directory %s still exists after exit (%v)", demoDir, err)
	}
	for _, k := range []string{"HTTPS_PORT", "SSH_PORT", "ADMIN_PORT", "DEX_PORT", "UPSTREAM_PORT", "SSHD_PORT"} {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+env[k], time.Second); err == nil {
			c.Close()
			t.Errorf("%s %s still accepts connections after the demo stopped", k, env[k])
		}
	}
}

// demoSSH runs the banner's ssh command with `id -un`, approves the
// connection in tab (already signed in) and checks the command's output.
func demoSSH(t *testing.T, tab *harness.Tab, env map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr syncBuffer
	ssh := exec.CommandContext(ctx, "ssh", "-p", env["SSH_PORT"], "-i", env["CLIENT_KEY"], "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile="+env["KNOWN_HOSTS"], "-o", "StrictHostKeyChecking=yes",
		env["SSH_LOGIN"]+"@demo-target@127.0.0.1", "id -un")
	var stdout bytes.Buffer
	ssh.Stdout, ssh.Stderr = &stdout, &stderr
	if err := ssh.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var sshErr error
	go func() { sshErr = ssh.Wait(); close(done) }()
	var a harness.SSHApproval
	for deadline := time.Now().Add(time.Minute); ; {
		var ok bool
		if a, ok = harness.ParseSSHApproval(stderr.String()); ok {
			break
		}
		select {
		case <-done:
			t.Fatalf("ssh ended (%v) without asking for approval:\n%s", sshErr, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no approval URL and code in ssh's output after a minute:\n%s", stderr.String())
		}
	}
	tab.ApproveSSH(a, env["DEMO_EMAIL"], env["DEMO_PASSWORD"])
	<-done
	if sshErr != nil {
		t.Fatalf("ssh: %v\n%s", sshErr, stderr.String())
	}
	if got := strings.TrimSpace(stdout.String()); got != env["SSH_LOGIN"] {
		t.Errorf("ssh id -un = %q, want %q", got, env["SSH_LOGIN"])
	}
	// The target let Gatehouse in with a certificate naming the person.
	sshdLog, _ := os.ReadFile(filepath.Join(env["DEMO_DIR"], "logs", "sshd.log"))
	accepted := grepLine(string(sshdLog), "Accepted certificate ID")
	if !strings.Contains(accepted, env["DEMO_EMAIL"]) {
		t.Errorf("sshd did not log a certificate naming %s; sshd log:\n%s", env["DEMO_EMAIL"], sshdLog)
	}
	t.Logf("ssh through the gateway approved in the browser; `id -un` = %q; sshd: %s", stdout.String(), accepted)
}

// waitFor waits until buf contains s and returns buf's contents; it fails
// the test if the process ends first or timeout passes.
func waitFor(t *testing.T, buf *syncBuffer, exited <-chan struct{}, s string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if text := buf.String(); strings.Contains(text, s) {
			return text
		}
		select {
		case <-exited:
			t.Fatalf("exited before printing %q:\n%s", s, buf.String())
		case <-deadline:
			t.Fatalf("no %q after %v:\n%s", s, timeout, buf.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func grepLine(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
