package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// sshEnv is the SSH setup: Dex, the real gatehouse binary with the portal
// and the SSH bastion, a real sshd target trusting Gatehouse's user CA,
// Chromium with a virtual authenticator, and an OpenSSH client
// configuration (known_hosts from `gatehouse ssh-config`, a fresh key).
type sshEnv struct {
	g        *harness.Gatehouse
	target   *harness.SSHD
	tab      *harness.Tab
	login    string // the target's login
	sshPort  string // Gatehouse's SSH port
	dir      string // client files
	config   string // ssh_config for ssh, scp and sftp (-F)
	echoAddr string // a TCP echo server listed in web's forwards
	other    string // a TCP echo server not listed
}

// The person who approves: in group sre, which every target allows.
const (
	sshEmail    = "ann@example.com"
	sshPassword = "pw-ann"
)

func startSSHEnv(t *testing.T) *sshEnv {
	t.Helper()
	for _, tool := range []string{"ssh", "scp", "sftp", "ssh-keygen"} {
		harness.RequireTool(t, tool)
	}
	ca := harness.NewCA(t)
	port := strconv.Itoa(harness.FreePort(t))
	portal := "https://gate.test:" + port
	dex := harness.StartDex(t, harness.DexOptions{
		CA:    ca,
		Users: []harness.DexUser{{Email: sshEmail, Password: sshPassword, Groups: []string{"sre"}}},
		Clients: []harness.DexClient{{ID: "gatehouse", Secret: "gatehouse-secret-for-tests",
			RedirectURIs: []string{portal + "/auth/callback"}}},
	})
	// The target trusts a placeholder until Gatehouse has made its user CA
	// (sshd reads TrustedUserCAKeys at each login).
	target := harness.StartSSHD(t, harness.SSHDOptions{TrustedUserCAKeys: randomKeyLine(t), AllowTCPForwarding: true})
	e := &sshEnv{target: target, login: target.User, dir: t.TempDir(), echoAddr: startEchoServer(t), other: startEchoServer(t)}
	cert, key := ca.Issue(t, "gate.test")
	cfg := fmt.Sprintf(`public_url: %s
listen:
  https: "127.0.0.1:%s"
  ssh: "127.0.0.1:0"
  admin: "127.0.0.1:0"
tls: {mode: files, cert_file: %s, key_file: %s}
data_dir: /placeholder
sso:
  issuer: %s
  client_id: gatehouse
  client_secret_file: %s
  ca_roots: [%s]
mfa: {max_age: 12h}
targets:
  - name: web
    address: %q
    host_key: %q
    logins: [%s]
    allow: {groups: [sre]}
    forwards: [%q]
  - name: every
    address: %q
    host_key: %q
    logins: [%s]
    allow: {groups: [sre]}
    mfa: every_connection
  - name: badkey
    address: %q
    host_key: %q
    logins: [%s]
    allow: {groups: [sre]}
`, portal, port, cert, key, dex.Issuer, dex.SecretFile(t, "gatehouse"), dex.CAFile,
		target.Addr, target.HostKeyLine, e.login, e.echoAddr,
		target.Addr, target.HostKeyLine, e.login,
		target.Addr, randomKeyLine(t), e.login)
	e.g = harness.StartGatehouseYAML(t, cfg)
	e.trustGateway(t)
	e.tab = harness.NewBrowser(t, harness.BrowserOptions{CA: ca}).NewTab(t)
	return e
}

// newSSHEnvFor is the client side for a running gateway g in front of
// target: trust set up both ways (see trustGateway), no browser yet.
func newSSHEnvFor(t *testing.T, g *harness.Gatehouse, target *harness.SSHD) *sshEnv {
	t.Helper()
	e := &sshEnv{g: g, target: target, login: target.User, dir: t.TempDir()}
	e.trustGateway(t)
	return e
}

// trustGateway makes the target trust Gatehouse's user CA, and the client
// trust the gateway and the targets behind it through ssh-config's
// @cert-authority line only; it writes a client config with a fresh key.
func (e *sshEnv) trustGateway(t *testing.T) {
	t.Helper()
	_, e.sshPort, _ = net.SplitHostPort(e.g.SSHAddr)
	userCA := strings.TrimSpace(e.g.MustRun(t, "ssh-config", "--user-ca"))
	if !strings.HasPrefix(userCA, "ssh-ed25519 ") {
		t.Fatalf("ssh-config --user-ca printed %q", userCA)
	}
	e.target.SetTrustedUserCAKeys(t, userCA)
	var caLine string
	for _, l := range strings.Split(e.g.MustRun(t, "ssh-config"), "\n") {
		if strings.HasPrefix(l, "@cert-authority ") {
			caLine = l
		}
	}
	if caLine == "" {
		t.Fatal("ssh-config printed no @cert-authority line")
	}
	writeTestFile(t, filepath.Join(e.dir, "known_hosts"), caLine+"\n")
	e.config = e.clientConfig(t, "id_ed25519")
}

// clientConfig makes a fresh Ed25519 key named name and an ssh_config
// that uses only it and trusts hosts only through the known_hosts file
// holding ssh-config's @cert-authority line. It returns the config's path.
func (e *sshEnv) clientConfig(t *testing.T, name string) string {
	t.Helper()
	keyFile := filepath.Join(e.dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	path := filepath.Join(e.dir, name+".ssh_config")
	writeTestFile(t, path, strings.Join([]string{
		"Host *",
		"  UserKnownHostsFile " + filepath.Join(e.dir, "known_hosts"),
		"  GlobalKnownHostsFile /dev/null",
		"  StrictHostKeyChecking yes",
		"  IdentitiesOnly yes",
		"  IdentityFile " + keyFile,
		"  IdentityAgent none",
		"  PasswordAuthentication no",
		"  ConnectTimeout 15",
		"",
	}, "\n"))
	return path
}

// withNewKey returns e with a client configuration for a fresh key, which
// Gatehouse has never seen.
func (e *sshEnv) withNewKey(t *testing.T, name string) *sshEnv {
	c := *e
	c.config = e.clientConfig(t, name)
	return &c
}

// dest is LOGIN@TARGET@127.0.0.1 for ssh and scp.
func (e *sshEnv) dest(login, target string) string {
	return login + "@" + target + "@127.0.0.1"
}

// sshRun is one running OpenSSH client process.
type sshRun struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{}
	err            error
}

// start runs prog (ssh, scp or sftp) with -F e.config and args, feeding
// stdin.
func (e *sshEnv) start(t *testing.T, stdin, prog string, args ...string) *sshRun {
	t.Helper()
	r := &sshRun{cmd: exec.Command(prog, append([]string{"-F", e.config}, args...)...), done: make(chan struct{})}
	r.cmd.Stdin = strings.NewReader(stdin)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", prog, err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// wait waits for the client to exit and returns its exit code.
func (r *sshRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(90 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Fatalf("%v did not finish\nstdout: %s\nstderr: %s", r.cmd.Args, r.stdout.String(), r.stderr.String())
	}
	return r.cmd.ProcessState.ExitCode()
}

// approval waits until the client shows an approval URL and code.
func (r *sshRun) approval(t *testing.T) harness.SSHApproval {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if a, ok := harness.ParseSSHApproval(r.stderr.String()); ok {
			return a
		}
		select {
		case <-r.done:
			t.Fatalf("%v exited without an approval prompt\nstderr: %s", r.cmd.Args, r.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("no approval prompt\nstderr: %s", r.stderr.String())
	return harness.SSHApproval{}
}

// run runs a client to completion, approving in the browser if it asks.
func (e *sshEnv) run(t *testing.T, approve bool, stdin, prog string, args ...string) (*sshRun, int) {
	t.Helper()
	r := e.start(t, stdin, prog, args...)
	if approve {
		e.tab.ApproveSSH(r.approval(t), sshEmail, sshPassword)
	}
	code := r.wait(t)
	if approve {
		return r, code
	}
	if _, asked := harness.ParseSSHApproval(r.stderr.String()); asked {
		t.Errorf("%v asked for an approval unexpectedly", r.cmd.Args)
	}
	return r, code
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
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

// randomKeyLine returns a fresh Ed25519 public key line.
func randomKeyLine(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// startEchoServer starts a loopback TCP server that echoes what it reads.
func startEchoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
