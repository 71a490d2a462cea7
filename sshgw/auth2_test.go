package sshgw

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/identity"
)

// TestReplayedApprovalRefused shows that an approval serves exactly one
// connection: on a target with mfa: every_connection a second connection
// with the same key gets a new approval, and the first one cannot be used
// again.
func TestReplayedApprovalRefused(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	key := newSigner(t)
	ids := e.approveNext(fresh(alice))
	c1 := &client{user: "ubuntu@every", key: key}
	cl, err := e.dial(c1)
	if err != nil {
		t.Fatalf("first connection: %v (%q)", err, c1.banner())
	}
	cl.Close()
	first := <-ids
	if e.binds.bound(gossh.FingerprintSHA256(key.PublicKey())) {
		t.Fatal("key bound on an every_connection target")
	}

	// Second connection: dial by hand so the test can drop it.
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	c2 := &client{user: "ubuntu@every", key: key}
	done := make(chan error, 1)
	go func() {
		cc, _, _, err := gossh.NewClientConn(nc, e.addr, c2.config(e.hostCA))
		if err == nil {
			cc.Close()
		}
		done <- err
	}()
	var second *identity.Approval
	select {
	case second = <-e.approvals.created:
	case <-time.After(10 * time.Second):
		t.Fatal("second connection created no approval")
	}
	if second.ID == first {
		t.Fatal("second connection reused the first approval")
	}
	if err := e.approvals.decide(first, fresh(alice)); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("approving the used approval again: %v, want ErrNotFound", err)
	}
	// The second connection is still waiting; dropping it ends the wait.
	select {
	case err := <-done:
		t.Fatalf("second connection finished without its approval: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	nc.Close()
	if err := <-done; err == nil {
		t.Fatal("second connection logged in")
	}
	e.audit.waitFor(t, "wait aborted", func(ev audit.Event) bool {
		return ev.Decision == audit.Deny && ev.Reason == "connection ended while waiting for approval"
	})
	if err := e.approvals.decide(second.ID, fresh(alice)); err != nil {
		t.Logf("late approval of the abandoned connection: %v", err)
	}
	if n := len(e.target.certs); n != 1 {
		t.Errorf("target saw %d logins, want 1", n)
	}
}

func TestBoundKeyDecisions(t *testing.T) {
	tests := []struct {
		name    string
		user    string
		owner   string // "alice" or "mallory"
		locked  bool
		banner  string // "" means the login succeeds
		approve bool   // a fresh approval is asked for
	}{
		{name: "allowed", user: "ubuntu@prod", owner: "alice"},
		{name: "host CA target", user: "ubuntu@viaca", owner: "alice"},
		{name: "unknown target", user: "ubuntu@nosuch", owner: "alice", banner: msgUnknownTarget},
		{name: "login not allowed", user: "root@prod", owner: "alice", banner: msgLoginDenied},
		{name: "person not allowed", user: "ubuntu@prod", owner: "mallory", banner: msgNotAllowed},
		{name: "locked", user: "ubuntu@prod", owner: "alice", locked: true, banner: msgLocked},
		{name: "wrong host key", user: "ubuntu@badkey", owner: "alice", banner: msgTargetDown},
		{name: "every connection asks", user: "ubuntu@every", owner: "alice", approve: true},
		{name: "double at", user: "ubuntu@@prod", owner: "alice", banner: "invalid user name"},
		{name: "control character", user: "ubu\x1bntu@prod", owner: "alice", banner: "invalid user name"},
		{name: "10 KB", user: strings.Repeat("a", 10<<10) + "@prod", owner: "alice", banner: "invalid user name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Limits{}, nil)
			key := newSigner(t)
			who := alice
			if tc.owner == "mallory" {
				who = mallory
			}
			e.bind(key, who)
			e.locks.set(who.Email, tc.locked)
			if tc.approve {
				e.approveNext(fresh(alice))
			}
			c := &client{user: tc.user, key: key, noKbd: !tc.approve}
			cl, err := e.dial(c)
			if tc.banner == "" {
				if err != nil {
					t.Fatalf("dial: %v (%q)", err, c.banner())
				}
				defer cl.Close()
				if out, _, code := run(t, cl, "whoami", ""); out != "ubuntu\n" || code != 0 {
					t.Errorf("whoami = %q, %d", out, code)
				}
				if got := c.promptCount(); (got > 0) != tc.approve {
					t.Errorf("approval prompts = %d, want asked=%v", got, tc.approve)
				}
				return
			}
			if err == nil {
				cl.Close()
				t.Fatal("login succeeded")
			}
			if !strings.Contains(c.banner(), "gatehouse: "+tc.banner) {
				t.Errorf("banner = %q, want %q", c.banner(), tc.banner)
			}
			if tc.name == "wrong host key" {
				e.audit.waitFor(t, "host key mismatch", func(ev audit.Event) bool {
					return ev.Type == "ssh.upstream" && ev.Decision == audit.Deny && strings.HasPrefix(ev.Reason, "host key mismatch")
				})
			} else if e.target.lastCert() != nil {
				t.Error("target was contacted")
			}
		})
	}
}

func TestRateLimitApprovalsPerKey(t *testing.T) {
	e := newEnv(t, Limits{ApprovalPerKey: Limit{N: 1, Window: time.Minute}}, nil)
	key := newSigner(t)
	e.approveNext(nil) // the first approval is denied
	c := &client{user: "ubuntu@prod", key: key}
	if cl, err := e.dial(c); err == nil {
		cl.Close()
		t.Fatal("denied approval logged in")
	}
	c2 := &client{user: "ubuntu@prod", key: key}
	if cl, err := e.dial(c2); err == nil {
		cl.Close()
		t.Fatal("second approval in the window logged in")
	}
	if !strings.Contains(c2.banner(), msgRateLimited) {
		t.Errorf("banner = %q", c2.banner())
	}
	if len(e.approvals.created) != 0 {
		t.Error("a second approval was created")
	}
}

func TestLockEndsLiveConnection(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	key := newSigner(t)
	e.bind(key, alice)
	cl, err := e.dial(&client{user: "ubuntu@prod", key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ended := make(chan struct{})
	go func() { _ = cl.Wait(); close(ended) }()
	// Publish until the server's subscription is surely in place.
	deadline := time.After(5 * time.Second)
	for {
		if err := e.store.Publish(context.Background(), identity.LockChannel, []byte(alice.Email)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ended:
			return
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("connection still open 5s after the lock")
		}
	}
}

func TestListTargets(t *testing.T) {
	tests := []struct {
		who  string
		want []string
		not  []string
	}{
		{"alice", []string{"prod", "ubuntu, postgres", "every", "viaca", "ssh -J gate.test:"}, nil},
		{"mallory", []string{"(no targets)"}, []string{"prod"}},
	}
	for _, tc := range tests {
		t.Run(tc.who, func(t *testing.T) {
			e := newEnv(t, Limits{}, nil)
			key := newSigner(t)
			who := alice
			if tc.who == "mallory" {
				who = mallory
			}
			e.bind(key, who)
			cl, err := e.dial(&client{user: "someone", key: key})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			out, _, code := run(t, cl, "", "")
			if code != 0 {
				t.Errorf("exit status %d", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("listing lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out, w) {
					t.Errorf("listing has %q:\n%s", w, out)
				}
			}
		})
	}
}
