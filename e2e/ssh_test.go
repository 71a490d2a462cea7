package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// TestSSH drives the SSH bastion with the stock OpenSSH client against the
// real binary and a real sshd, approving in Chromium through Dex and a
// virtual authenticator. The subtests run in order: the first approval
// binds the key, which later subtests rely on.
func TestSSH(t *testing.T) {
	e := startSSHEnv(t)
	gw := func(target string) string { return e.dest(e.login, target) }
	p := []string{"-p", e.sshPort}

	t.Run("first contact asks for approval, exec keeps the exit status", func(t *testing.T) {
		r, code := e.run(t, true, "", "ssh", append(p, gw("web"), "echo hello from $(whoami); exit 3")...)
		if code != 3 || r.stdout.String() != "hello from "+e.login+"\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
		}
		if !strings.Contains(e.target.Logs(), `ID "gatehouse:`+sshEmail+`:`) {
			t.Errorf("sshd did not log Gatehouse's certificate for %s:\n%s", sshEmail, e.target.Logs())
		}
	})

	t.Run("bound key connects without approval in batch mode", func(t *testing.T) {
		if r, code := e.run(t, false, "", "ssh", append(p, "-o", "BatchMode=yes", gw("web"), "true")...); code != 0 {
			t.Fatalf("exit %d, stderr %q", code, r.stderr.String())
		}
	})

	t.Run("interactive shell", func(t *testing.T) {
		r, code := e.run(t, false, "echo result=$((6*7))\nexit 4\n", "ssh", append(p, "-tt", gw("web"))...)
		if code != 4 || !strings.Contains(r.stdout.String(), "result=42") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
		}
	})

	t.Run("scp both ways", func(t *testing.T) {
		for _, mode := range []string{"sftp", "legacy"} {
			local := randomFile(t, 1<<20+123)
			remote := "/tmp/gh-e2e-scp-" + randomName()
			t.Cleanup(func() { os.Remove(remote) })
			args := []string{"-P", e.sshPort}
			if mode == "legacy" {
				args = append(args, "-O")
			}
			if r, code := e.run(t, false, "", "scp", append(args, local, gw("web")+":"+remote)...); code != 0 {
				t.Fatalf("%s upload: exit %d, %s", mode, code, r.stderr.String())
			}
			back := filepath.Join(t.TempDir(), "back")
			if r, code := e.run(t, false, "", "scp", append(args, gw("web")+":"+remote, back)...); code != 0 {
				t.Fatalf("%s download: exit %d, %s", mode, code, r.stderr.String())
			}
			sameFile(t, local, back)
		}
	})

	t.Run("sftp batch", func(t *testing.T) {
		local := randomFile(t, 300<<10)
		remote := "/tmp/gh-e2e-sftp-" + randomName()
		t.Cleanup(func() { os.Remove(remote) })
		back := filepath.Join(t.TempDir(), "back")
		batch := filepath.Join(t.TempDir(), "batch")
		writeTestFile(t, batch, fmt.Sprintf("put %s %s\nls -l %s\nget %s %s\nrm %s\n", local, remote, remote, remote, back, remote))
		r, code := e.run(t, false, "", "sftp", "-P", e.sshPort, "-b", batch, gw("web"))
		if code != 0 {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
		}
		sameFile(t, local, back)
		if _, err := os.Stat(remote); !os.IsNotExist(err) {
			t.Errorf("sftp rm left %s: %v", remote, err)
		}
	})

	t.Run("ProxyJump", func(t *testing.T) {
		r, code := e.run(t, false, "", "ssh", "-J", "127.0.0.1:"+e.sshPort, e.login+"@web", "echo jumped to $(hostname)")
		host, _ := os.Hostname()
		if code != 0 || r.stdout.String() != "jumped to "+host+"\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
		}
	})

	t.Run("ProxyJump with a new key asks on the outer connection", func(t *testing.T) {
		e2 := e.withNewKey(t, "id_jump")
		r, code := e2.run(t, true, "", "ssh", "-J", "127.0.0.1:"+e.sshPort, e.login+"@web", "echo jumped")
		if code != 0 || r.stdout.String() != "jumped\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
		}
	})

	t.Run("listed forward works", func(t *testing.T) {
		r, code := e.run(t, false, "ping through the forward", "ssh", append(p, "-W", e.echoAddr, gw("web"))...)
		if code != 0 || r.stdout.String() != "ping through the forward" {
			t.Fatalf("-W: exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
		}
		lport := strconv.Itoa(harness.FreePort(t))
		fwd := e.start(t, "", "ssh", append(p, "-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:"+lport+":"+e.echoAddr, gw("web"))...)
		defer fwd.cmd.Process.Kill()
		var got string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && got == ""; time.Sleep(100 * time.Millisecond) {
			got = echoOnce(net.JoinHostPort("127.0.0.1", lport), "hello -L")
		}
		if got != "hello -L" {
			t.Errorf("-L forward echoed %q; ssh stderr %q", got, fwd.stderr.String())
		}
	})

	t.Run("unlisted forward refused", func(t *testing.T) {
		r, code := e.run(t, false, "ping", "ssh", append(p, "-W", e.other, gw("web"))...)
		if code == 0 || r.stdout.String() != "" || !strings.Contains(r.stderr.String(), "administratively prohibited") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
		}
	})

	refusals := []struct{ name, dest, want string }{
		{"unknown target", gw("nosuch"), "gatehouse: unknown target"},
		{"disallowed login", e.dest("root", "web"), "gatehouse: login not allowed"},
		{"wrong target host key", gw("badkey"), "gatehouse: target unavailable"},
		{"hostile user name", e.dest("ro@@t", "web"), "gatehouse: invalid user name"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			r, code := e.run(t, false, "", "ssh", append(p, "-o", "BatchMode=yes", tc.dest, "true")...)
			if code != 255 || !strings.Contains(r.stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 255 and %q", code, r.stderr.String(), tc.want)
			}
		})
	}
	t.Run("wrong host key is audited", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(e.g.DataDir, "audit", "audit.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`"type":"ssh.upstream".*"resource":"target:badkey".*host key mismatch`).Match(data) {
			t.Errorf("audit log lacks the host key mismatch for badkey")
		}
	})

	t.Run("no target lists targets", func(t *testing.T) {
		r, code := e.run(t, false, "", "ssh", append(p, "127.0.0.1")...)
		out := r.stdout.String()
		if code != 0 || !strings.Contains(out, "web") || !strings.Contains(out, e.login) || strings.Contains(out, "root") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, r.stderr.String())
		}
	})

	t.Run("replayed approval is refused", func(t *testing.T) {
		first := e.start(t, "", "ssh", append(p, gw("every"), "echo once")...)
		a := first.approval(t)
		e.tab.ApproveSSH(a, sshEmail, sshPassword)
		if code := first.wait(t); code != 0 || first.stdout.String() != "once\n" {
			t.Fatalf("first: exit %d, stdout %q, stderr %q", code, first.stdout.String(), first.stderr.String())
		}
		second := e.start(t, "", "ssh", append(p, gw("every"), "echo twice")...)
		b := second.approval(t)
		if b.URL == a.URL || b.Code == a.Code && b.URL == a.URL {
			t.Fatalf("second connection shows the first approval %v", a)
		}
		// The used approval link is dead; the second connection waits.
		e.tab.Navigate(a.URL)
		e.tab.WaitText("already used")
		select {
		case <-second.done:
			t.Fatalf("second connection ended: %q", second.stderr.String())
		case <-time.After(time.Second):
		}
		e.tab.ApproveSSH(b, sshEmail, sshPassword)
		if code := second.wait(t); code != 0 || second.stdout.String() != "twice\n" {
			t.Fatalf("second: exit %d, stdout %q, stderr %q", code, second.stdout.String(), second.stderr.String())
		}
	})
}

// TestSSHAudit runs Debian's ssh-audit against the gateway's SSH port and
// fails on any failure or warning for key exchange, host key, cipher or
// MAC, except the "unknown algorithm" notes ssh-audit 2.5.0 gives for the
// two algorithms newer than it.
func TestSSHAudit(t *testing.T) {
	bin := harness.RequireTool(t, "ssh-audit")
	g := harness.StartGatehouseYAML(t, `public_url: https://gate.test
listen:
  ssh: "127.0.0.1:0"
data_dir: /placeholder
`)
	host, port, _ := net.SplitHostPort(g.SSHAddr)
	out, err := exec.Command(bin, "-n", "-p", port, host).CombinedOutput()
	if err != nil {
		t.Logf("ssh-audit exited with %v (it exits non-zero for unknown algorithms)", err)
	}
	t.Logf("ssh-audit:\n%s", out)
	known := map[string]bool{"mlkem768x25519-sha256": true, "kex-strict-s-v00@openssh.com": true}
	algLine := regexp.MustCompile(`^\((kex|key|enc|mac)\) (\S+)`)
	seen := map[string]int{}
	alg := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := algLine.FindStringSubmatch(line); m != nil {
			alg = m[2]
			seen[m[1]]++
		} else if !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "(") {
			alg = ""
		}
		if strings.HasPrefix(line, "(rec)") {
			t.Errorf("ssh-audit recommends a change: %s", line)
		}
		if !strings.Contains(line, "[fail]") && !strings.Contains(line, "[warn]") {
			continue
		}
		if alg != "" && known[alg] && strings.Contains(line, "[warn] unknown algorithm") {
			continue
		}
		t.Errorf("ssh-audit: %s", line)
	}
	for _, k := range []string{"kex", "key", "enc", "mac"} {
		if seen[k] == 0 {
			t.Errorf("ssh-audit output has no %s section (did it connect?)", k)
		}
	}
}

func randomName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// randomFile writes n random bytes to a new file and returns its path.
func randomFile(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	p := filepath.Join(t.TempDir(), "data-"+randomName())
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
		t.Errorf("%s and %s differ (%d vs %d bytes; %v %v)", a, b, len(x), len(y), err1, err2)
	}
}

// echoOnce sends msg to an echo server at addr and returns the reply, or
// "" on any error.
func echoOnce(addr, msg string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return ""
	}
	buf := make([]byte, len(msg))
	n, _ := io.ReadFull(c, buf)
	return string(buf[:n])
}
