package sshgw

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
)

// reload applies a copy of the env's config changed by mutate.
func (e *env) reload(mutate func(*config.Config)) error {
	c := *e.cfg
	c.Targets = slices.Clone(e.cfg.Targets)
	mutate(&c)
	c.ApplyDefaults()
	return e.srv.Reload(&c)
}

// syncBuf is a bytes.Buffer safe for the session's copy goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// shell opens an interactive session that stays open; ended is closed
// when the connection ends, and stderr collects what the gateway says.
func shell(t *testing.T, cl *gossh.Client) (stderr *syncBuf, ended chan struct{}) {
	t.Helper()
	s, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stderr = &syncBuf{}
	s.Stderr, s.Stdout = stderr, &syncBuf{}
	if _, err := s.StdinPipe(); err != nil { // held open: the shell waits
		t.Fatal(err)
	}
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	ended = make(chan struct{})
	// The session's Wait also waits for its stderr to be copied out:
	// after only the connection's, the notice may not be in stderr yet.
	go func() { _ = s.Wait(); _ = cl.Wait(); close(ended) }()
	return stderr, ended
}

func dropSRE(name string) func(*config.Config) {
	return func(c *config.Config) {
		for i := range c.Targets {
			if c.Targets[i].Name == name {
				c.Targets[i].Allow = config.Allow{Groups: []string{"dba"}}
			}
		}
	}
}

func TestReloadEndsConnectionsNoLongerAdmitted(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	key := newSigner(t)
	e.bind(key, alice)
	prod, err := e.dial(&client{user: "ubuntu@prod", key: key, noKbd: true})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	stderr, ended := shell(t, prod)
	open, err := e.dial(&client{user: "ubuntu@open", key: key, noKbd: true})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	inner, err := e.jump(t, key, "prod:22", "prod", &client{user: "ubuntu", key: key, noKbd: true})
	if err != nil {
		t.Fatal(err)
	}
	_, innerEnded := shell(t, inner)

	if err := e.reload(dropSRE("prod")); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	for what, ch := range map[string]chan struct{}{"direct": ended, "ProxyJump": innerEnded} {
		select {
		case <-ch:
		case <-time.After(time.Second):
			t.Fatalf("%s connection to prod still open a second after the reload", what)
		}
	}
	if got := stderr.String(); !strings.Contains(got, "gatehouse: connection closed: "+reasonReload) {
		t.Errorf("client was told %q", got)
	}
	ev := e.audit.waitFor(t, "ssh.end", func(ev audit.Event) bool {
		return ev.Type == "ssh.end" && ev.Reason == reasonReload && ev.Resource == "target:prod"
	})
	if ev.Actor != alice.Email || ev.Action != "login ubuntu" {
		t.Errorf("ssh.end event = %+v", ev)
	}
	// Still admitted: untouched, and it follows the new policy.
	if out, _, code := run(t, open, "echo still here", ""); out != "still here\n" || code != 0 {
		t.Errorf("connection to open after reload: %q, %d", out, code)
	}
	// New connections use the new policy at once.
	c := &client{user: "ubuntu@prod", key: key, noKbd: true}
	if cl, err := e.dial(c); err == nil {
		cl.Close()
		t.Fatal("new connection to prod admitted after the reload")
	}
	if !strings.Contains(c.banner(), msgNotAllowed) {
		t.Errorf("banner = %q", c.banner())
	}
}

func TestReloadRemovedTargetIsUnknown(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	key := newSigner(t)
	e.bind(key, alice)
	err := e.reload(func(c *config.Config) {
		c.Targets = slices.DeleteFunc(c.Targets, func(t config.Target) bool { return t.Name == "prod" })
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{user: "ubuntu@prod", key: key, noKbd: true}
	if cl, err := e.dial(c); err == nil {
		cl.Close()
		t.Fatal("removed target reachable")
	}
	if !strings.Contains(c.banner(), msgUnknownTarget) {
		t.Errorf("banner = %q", c.banner())
	}
	cl, err := e.dial(&client{user: "someone", key: key, noKbd: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if out, _, _ := run(t, cl, "", ""); strings.Contains(out, "prod ") {
		t.Errorf("listing still names prod:\n%s", out)
	}
}

func TestReloadRefusedChangesNothing(t *testing.T) {
	tests := map[string]struct {
		mutate func(*config.Config)
		want   string
	}{
		"bad host key": {func(c *config.Config) {
			dropSRE("prod")(c)
			c.Targets[1].HostKey = "ssh-ed25519 not-a-key"
		}, "targets[1].host_key"},
		"data_dir": {func(c *config.Config) {
			dropSRE("prod")(c)
			c.DataDir += "-other"
		}, "data_dir"},
		"listen.ssh": {func(c *config.Config) {
			dropSRE("prod")(c)
			c.Listen.SSH = "127.0.0.1:2"
		}, "listen.ssh"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, Limits{}, nil)
			key := newSigner(t)
			e.bind(key, alice)
			live, err := e.dial(&client{user: "ubuntu@prod", key: key, noKbd: true})
			if err != nil {
				t.Fatal(err)
			}
			defer live.Close()
			err = e.reload(tc.mutate)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload = %v, want an error naming %s", err, tc.want)
			}
			if out, _, code := run(t, live, "echo on", ""); out != "on\n" || code != 0 {
				t.Errorf("live connection after a refused reload: %q, %d", out, code)
			}
			cl, err := e.dial(&client{user: "ubuntu@prod", key: key, noKbd: true})
			if err != nil {
				t.Fatalf("new connection under the old policy: %v", err)
			}
			settle(t, cl)
		})
	}
}

// TestReloadRecordRequiredEndsUnrecorded: a reload that makes a target's
// recording required ends the connections to it that opened unrecorded
// (their channels would stay unrecorded); connections to targets whose
// recording did not change stay.
func TestReloadRecordRequiredEndsUnrecorded(t *testing.T) {
	e := newEnv(t, Limits{}, func(c *config.Config) { c.Targets[0].Record = config.RecordOff })
	key := newSigner(t)
	e.bind(key, alice)
	prod, err := e.dial(&client{user: "ubuntu@prod", key: key, noKbd: true})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	stderr, ended := shell(t, prod)
	open, err := e.dial(&client{user: "ubuntu@open", key: key, noKbd: true})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	if err := e.reload(func(c *config.Config) { c.Targets[0].Record = config.RecordRequired }); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	select {
	case <-ended:
	case <-time.After(time.Second):
		t.Fatal("unrecorded connection to prod still open a second after recording became required")
	}
	if got := stderr.String(); !strings.Contains(got, "gatehouse: connection closed: "+reasonReload) {
		t.Errorf("client was told %q", got)
	}
	e.audit.waitFor(t, "ssh.end", func(ev audit.Event) bool {
		return ev.Type == "ssh.end" && ev.Reason == reasonReload && ev.Resource == "target:prod" && ev.Actor == alice.Email
	})
	if out, _, code := run(t, open, "echo still here", ""); out != "still here\n" || code != 0 {
		t.Errorf("connection to open (recording unchanged) after reload: %q, %d", out, code)
	}
}
