package sshgw

import (
	"bytes"
	"crypto/rand"
	"io"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/gatehouse-dev/gatehouse/config"
)

// dialBound connects as login@target with a key bound to alice.
func (e *env) dialBound(t *testing.T, user string) *gossh.Client {
	t.Helper()
	key := newSigner(t)
	e.bind(key, alice)
	cl, err := e.dial(&client{user: user, key: key, noKbd: true})
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func TestExecRelay(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	cl := e.dialBound(t, "ubuntu@prod")
	big := make([]byte, 3<<20)
	_, _ = rand.Read(big)
	tests := []struct {
		cmd, stdin     string
		stdout, stderr string
		status         int
	}{
		{cmd: "echo hello", stdout: "hello\n"},
		{cmd: "exit 3", status: 3},
		{cmd: "stderr oops", stderr: "oops\n"},
		{cmd: "cat", stdin: string(big), stdout: string(big)},
		{cmd: "nosuch", stderr: "unknown command\n", status: 127},
	}
	for _, tc := range tests {
		out, errOut, status := run(t, cl, tc.cmd, tc.stdin)
		if out != tc.stdout || errOut != tc.stderr || status != tc.status {
			t.Errorf("run(%q) = %d bytes out, %q, %d; want %d bytes, %q, %d",
				tc.cmd, len(out), errOut, status, len(tc.stdout), tc.stderr, tc.status)
		}
	}
}

func TestSessionRequestPolicy(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	cl := e.dialBound(t, "ubuntu@prod")
	s, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Setenv("ALLOWED", "yes"); err != nil {
		t.Errorf("Setenv(ALLOWED): %v", err)
	}
	if err := s.Setenv("LD_PRELOAD", "/tmp/x.so"); err == nil {
		t.Error("Setenv(LD_PRELOAD) accepted")
	}
	if err := s.RequestPty("xterm", 24, 80, gossh.TerminalModes{}); err != nil {
		t.Errorf("RequestPty: %v", err)
	}
	if ok, _ := s.SendRequest("x11-req", true, gossh.Marshal(struct {
		Single        bool
		Proto, Cookie string
		Screen        uint32
	}{false, "MIT-MAGIC-COOKIE-1", "00", 0})); ok {
		t.Error("x11-req accepted on a target without x11")
	}
	if err := agent.RequestAgentForwarding(s); err == nil {
		t.Error("agent forwarding accepted on a target without agent_forward")
	}
	if ok, _ := s.SendRequest("break", true, gossh.Marshal(struct{ Ms uint32 }{10})); ok {
		t.Error("unlisted request accepted")
	}
	var out bytes.Buffer
	s.Stdout = &out
	if err := s.Run("env"); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "ALLOWED=yes" {
		t.Errorf("environment at the target = %q, want ALLOWED=yes", got)
	}
	for _, r := range []string{"request x11-req", "request auth-agent-req@openssh.com", "request break"} {
		if e.target.saw(r) {
			t.Errorf("target received %q", r)
		}
	}
	if !e.target.saw("request pty-req") {
		t.Error("target did not receive pty-req")
	}
}

func TestSubsystems(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	cl := e.dialBound(t, "ubuntu@prod")
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"sftp", true}, {"netconf", false}, {"", false}} {
		s, err := cl.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		// RequestSubsystem does not start the session's copying (the sftp
		// package uses the pipes), so use them here too.
		in, _ := s.StdinPipe()
		outp, _ := s.StdoutPipe()
		err = s.RequestSubsystem(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("subsystem %q: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err == nil {
			io.WriteString(in, "ping\n")
			in.Close()
			out, err := io.ReadAll(outp)
			if string(out) != "echo: ping\n" || err != nil {
				t.Errorf("sftp data = %q, %v", out, err)
			}
		}
		s.Close()
	}
}

func TestLocalForwardPolicy(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	cl := e.dialBound(t, "ubuntu@prod")
	c, err := cl.Dial("tcp", e.echoAddr)
	if err != nil {
		t.Fatalf("listed forward refused: %v", err)
	}
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Errorf("echo through forward = %q, %v", buf, err)
	}
	c.Close()

	other := startEcho(t)
	if c, err := cl.Dial("tcp", other); err == nil {
		c.Close()
		t.Errorf("unlisted forward to %s accepted", other)
	} else if !strings.Contains(err.Error(), "forward not allowed") {
		t.Errorf("unlisted forward: %v", err)
	}
}

func TestRemoteAndAgentForwardWhenAllowed(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	// prod: remote forwarding off.
	if ln, err := e.dialBound(t, "ubuntu@prod").Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
		t.Error("remote forward accepted on prod")
	}
	if e.target.saw("global tcpip-forward") {
		t.Error("target received tcpip-forward for prod")
	}
	// open: remote and agent forwarding on.
	cl := e.dialBound(t, "ubuntu@open")
	ok, _, err := cl.SendRequest("tcpip-forward", true, gossh.Marshal(struct {
		Addr string
		Port uint32
	}{"127.0.0.1", 0}))
	if err != nil || !ok {
		t.Errorf("remote forward on open: ok=%v err=%v", ok, err)
	}
	s, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := agent.RequestAgentForwarding(s); err != nil {
		t.Errorf("agent forwarding on open: %v", err)
	}
	if !e.target.saw("global tcpip-forward") || !e.target.saw("request auth-agent-req@openssh.com") {
		t.Error("target did not receive the allowed forward requests")
	}
	cert := e.target.lastCert()
	for _, ext := range []string{"permit-port-forwarding", "permit-agent-forwarding", "permit-X11-forwarding"} {
		if _, ok := cert.Extensions[ext]; !ok {
			t.Errorf("certificate for open lacks %s", ext)
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, Limits{}, func(c *config.Config) {
		c.Targets[0].IdleTimeout = config.Duration(300 * time.Millisecond)
	})
	cl := e.dialBound(t, "ubuntu@prod")
	start := time.Now()
	if out, _, _ := run(t, cl, "echo alive", ""); out != "alive\n" {
		t.Fatalf("echo = %q", out)
	}
	ended := make(chan struct{})
	go func() { _ = cl.Wait(); close(ended) }()
	select {
	case <-ended:
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("closed after %v, before the idle timeout", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection not closed")
	}
}

func TestMaxSession(t *testing.T) {
	e := newEnv(t, Limits{}, func(c *config.Config) {
		c.Targets[0].MaxSession = config.Duration(500 * time.Millisecond)
	})
	cl := e.dialBound(t, "ubuntu@prod")
	ended := make(chan struct{})
	go func() { _ = cl.Wait(); close(ended) }()
	// Keep the connection busy: activity must not extend the lifetime.
	stop := time.After(5 * time.Second)
	for {
		select {
		case <-ended:
			return
		case <-stop:
			t.Fatal("connection outlived max_session")
		case <-time.After(50 * time.Millisecond):
			s, err := cl.NewSession()
			if err == nil {
				_ = s.Run("echo busy")
				s.Close()
			}
		}
	}
}
