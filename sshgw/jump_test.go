package sshgw

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// jump connects through the gateway (outer user "alice") to dest, then
// logs in as inner over that channel, checking the host certificate for
// principal host as OpenSSH would with the @cert-authority line.
func (e *env) jump(t *testing.T, key gossh.Signer, dest, host string, inner *client) (*gossh.Client, error) {
	t.Helper()
	outer, err := e.dial(&client{user: "alice", key: key, noKbd: true})
	if err != nil {
		t.Fatalf("outer connection: %v", err)
	}
	t.Cleanup(func() { outer.Close() })
	nc, err := outer.Dial("tcp", dest)
	if err != nil {
		return nil, err
	}
	cfg := inner.config(e.hostCA)
	checker := &gossh.CertChecker{
		IsHostAuthority: func(auth gossh.PublicKey, _ string) bool { return bytes.Equal(auth.Marshal(), e.hostCA.Marshal()) },
	}
	cfg.HostKeyCallback = checker.CheckHostKey
	cc, chans, reqs, err := gossh.NewClientConn(nc, net.JoinHostPort(host, "22"), cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	cl := gossh.NewClient(cc, chans, reqs)
	t.Cleanup(func() { cl.Close() })
	return cl, nil
}

func TestProxyJump(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	key := newSigner(t)
	e.bind(key, alice)
	inner := &client{user: "postgres", key: key, noKbd: true}
	cl, err := e.jump(t, key, "prod:22", "prod", inner)
	if err != nil {
		t.Fatalf("jump to prod: %v", err)
	}
	if out, _, code := run(t, cl, "whoami", ""); out != "postgres\n" || code != 0 {
		t.Errorf("whoami through jump = %q, %d", out, code)
	}
	if out, _, code := run(t, cl, "exit 3", ""); code != 3 {
		t.Errorf("exit 3 through jump = %q, %d", out, code)
	}
	cert := e.target.lastCert()
	if cert == nil || !strings.HasPrefix(cert.KeyId, "gatehouse:alice@example.com:") {
		t.Errorf("target certificate = %+v", cert)
	}
	// The inner connection follows the same policy: unlisted forwards are
	// refused.
	if c, err := cl.Dial("tcp", "127.0.0.1:1"); err == nil {
		c.Close()
		t.Error("unlisted forward through jump accepted")
	}
}

func TestProxyJumpByAddressAndHostCert(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	key := newSigner(t)
	e.bind(key, alice)
	host, _, _ := net.SplitHostPort(e.caTarget.addr)
	cl, err := e.jump(t, key, e.caTarget.addr, host, &client{user: "ubuntu", key: key, noKbd: true})
	if err != nil {
		t.Fatalf("jump by address: %v", err)
	}
	if out, _, _ := run(t, cl, "whoami", ""); out != "ubuntu\n" {
		t.Errorf("whoami = %q", out)
	}
}

func TestProxyJumpRefusals(t *testing.T) {
	tests := []struct {
		name       string
		dest, host string
		user       string
		want       string
	}{
		{"unknown target", "nosuch:22", "nosuch", "ubuntu", msgUnknownTarget},
		{"unknown address", "127.0.0.1:1", "127.0.0.1", "ubuntu", msgUnknownTarget},
		{"login not allowed", "prod:22", "prod", "root", msgLoginDenied},
		{"other target in user name", "prod:22", "prod", "ubuntu@every", msgUnknownTarget},
		{"wrong host key", "badkey:22", "badkey", "ubuntu", msgTargetDown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Limits{}, nil)
			key := newSigner(t)
			e.bind(key, alice)
			inner := &client{user: tc.user, key: key, noKbd: true}
			cl, err := e.jump(t, key, tc.dest, tc.host, inner)
			if err == nil {
				cl.Close()
				t.Fatal("jump succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) && !strings.Contains(inner.banner(), tc.want) {
				t.Errorf("error %v, banner %q; want %q", err, inner.banner(), tc.want)
			}
		})
	}
}

func TestProxyJumpEveryConnectionAsksInside(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	key := newSigner(t)
	e.bind(key, alice)
	e.approveNext(fresh(alice))
	inner := &client{user: "ubuntu", key: key}
	cl, err := e.jump(t, key, "every:22", "every", inner)
	if err != nil {
		t.Fatalf("jump to every: %v", err)
	}
	if inner.promptCount() != 1 {
		t.Errorf("inner approval prompts = %d, want 1", inner.promptCount())
	}
	if out, _, _ := run(t, cl, "whoami", ""); out != "ubuntu\n" {
		t.Errorf("whoami = %q", out)
	}
}

func TestProxyJumpInnerEndsWithOuter(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	key := newSigner(t)
	e.bind(key, alice)
	outer, err := e.dial(&client{user: "alice", key: key, noKbd: true})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := outer.Dial("tcp", "prod:22")
	if err != nil {
		t.Fatal(err)
	}
	cfg := (&client{user: "ubuntu", key: key, noKbd: true}).config(e.hostCA)
	cc, chans, reqs, err := gossh.NewClientConn(nc, "prod:22", cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl := gossh.NewClient(cc, chans, reqs)
	ended := make(chan struct{})
	go func() { _ = cl.Wait(); close(ended) }()
	outer.Close()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("inner connection outlived the outer one")
	}
	// The gateway forgets both connections.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		e.srv.mu.Lock()
		n := len(e.srv.live)
		e.srv.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("live connections remain after both ended")
}
