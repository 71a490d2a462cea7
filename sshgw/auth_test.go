package sshgw

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
)

func TestNoneMethodRefused(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	key := newSigner(t)
	e.bind(key, alice) // even a bound key's owner cannot skip the key
	for _, user := range []string{"ubuntu@prod", "alice"} {
		c := &client{user: user, noAuth: true}
		cl, err := e.dial(c)
		if err == nil {
			cl.Close()
			t.Fatalf("dial %q with only the none method succeeded", user)
		}
		if !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("dial %q: %v, want an authentication failure", user, err)
		}
	}
	if c := e.target.lastCert(); c != nil {
		t.Errorf("target was contacted with %q", c.KeyId)
	}
}

func TestServerConfigNeverAllowsNone(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	a, b := net.Pipe()
	defer b.Close()
	c := e.srv.newConn(context.Background(), a, &net.TCPAddr{}, nil, nil)
	defer c.close("")
	cfg := c.serverConfig()
	if cfg.NoClientAuth || cfg.NoClientAuthCallback == nil {
		t.Fatalf("NoClientAuth = %v, callback set = %v; want false and set", cfg.NoClientAuth, cfg.NoClientAuthCallback != nil)
	}
	if _, err := cfg.NoClientAuthCallback(nil); err == nil {
		t.Error("NoClientAuthCallback accepted")
	}
	if cfg.KeyboardInteractiveCallback != nil || cfg.PasswordCallback != nil {
		t.Error("keyboard-interactive or password offered before a verified key")
	}
	// gliderlabs sets NoClientAuth when none of its handlers is set.
	if e.srv.gl.PublicKeyHandler == nil || e.srv.gl.PasswordHandler != nil || e.srv.gl.KeyboardInteractiveHandler != nil {
		t.Error("gliderlabs handlers: want only PublicKeyHandler set")
	}
}

func TestUnapprovedKeyRefusedInBatchMode(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	c := &client{user: "ubuntu@prod", key: newSigner(t), noKbd: true}
	cl, err := e.dial(c)
	if err == nil {
		cl.Close()
		t.Fatal("unapproved key logged in without keyboard-interactive")
	}
	if len(e.approvals.created) != 0 {
		t.Error("an approval was created although the client cannot show it")
	}
	// The failed login is audited (the Alerter counts such refusals).
	ev := e.audit.waitFor(t, "failed login", func(ev audit.Event) bool {
		return ev.Type == "ssh.auth" && ev.Decision == audit.Deny && strings.HasPrefix(ev.Reason, "authentication not completed")
	})
	if ev.Details["methods"] != "publickey" || ev.Source == "" {
		t.Errorf("audit event = %+v", ev)
	}
	if c := e.target.lastCert(); c != nil {
		t.Errorf("target was contacted with %q", c.KeyId)
	}
}

func TestApprovalFlow(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	key := newSigner(t)
	fp := gossh.FingerprintSHA256(key.PublicKey())
	ids := e.approveNext(fresh(alice))
	c := &client{user: "ubuntu@prod", key: key}
	cl, err := e.dial(c)
	if err != nil {
		t.Fatalf("dial after approval: %v (banner %q)", err, c.banner())
	}
	id := <-ids
	if out, _, code := run(t, cl, "echo hi", ""); out != "hi\n" || code != 0 {
		t.Errorf("echo hi = %q, %d", out, code)
	}
	cl.Close()
	if c.promptCount() != 1 || !strings.Contains(c.prompts[0], "https://gate.test/approve/"+id) || !strings.Contains(c.prompts[0], "Verification code: ") {
		t.Errorf("prompts = %q, want one with the approval URL and code", c.prompts)
	}
	if !e.binds.bound(fp) {
		t.Fatal("key not bound after approval")
	}
	if ttl := e.binds.ttls[0]; ttl < 11*time.Hour || ttl > 12*time.Hour {
		t.Errorf("binding ttl = %v, want about the MFA max age (12h)", ttl)
	}
	cert := e.target.lastCert()
	if cert == nil {
		t.Fatal("target saw no certificate")
	}
	wantExt := map[string]string{"permit-pty": "", "permit-port-forwarding": ""}
	if diff := cmp.Diff(wantExt, cert.Extensions); diff != "" {
		t.Errorf("certificate extensions (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(cert.KeyId, "gatehouse:alice@example.com:") || len(cert.KeyId) <= len("gatehouse:alice@example.com:") {
		t.Errorf("KeyId = %q", cert.KeyId)
	}
	if diff := cmp.Diff([]string{"ubuntu"}, cert.ValidPrincipals); diff != "" {
		t.Errorf("principals (-want +got):\n%s", diff)
	}
	life := time.Duration(cert.ValidBefore-cert.ValidAfter) * time.Second
	if life > 6*time.Minute+time.Second {
		t.Errorf("certificate valid for %v, want at most 6m", life)
	}
	ev := e.audit.waitFor(t, "ssh.auth allow", func(ev audit.Event) bool { return ev.Type == "ssh.auth" && ev.Decision == audit.Allow })
	if ev.Actor != alice.Email || ev.Resource != "target:prod" || ev.Details["key"] != fp || ev.Reason != "authenticated by keyboard-interactive" {
		t.Errorf("audit event = %+v", ev)
	}

	// The key is bound now: the next connection needs no approval.
	c2 := &client{user: "postgres@prod", key: key}
	cl2, err := e.dial(c2)
	if err != nil {
		t.Fatalf("dial with bound key: %v", err)
	}
	defer cl2.Close()
	if out, _, _ := run(t, cl2, "whoami", ""); out != "postgres\n" {
		t.Errorf("whoami = %q", out)
	}
	if c2.promptCount() != 0 {
		t.Errorf("bound key was asked for approval: %q", c2.prompts)
	}
}

func TestApprovalRefusals(t *testing.T) {
	tests := []struct {
		name   string
		who    *mfaSubject
		user   string
		banner string
	}{
		{"denied in the browser", nil, "ubuntu@prod", "approval denied"},
		{"approver not allowed", &mfaSubject{mallory}, "ubuntu@prod", "not allowed"},
		{"login not allowed", &mfaSubject{alice}, "root@prod", "login not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Limits{}, nil)
			key := newSigner(t)
			if tc.who == nil {
				e.approveNext(nil)
			} else {
				e.approveNext(fresh(tc.who.s))
			}
			c := &client{user: tc.user, key: key}
			cl, err := e.dial(c)
			if err == nil {
				cl.Close()
				t.Fatal("login succeeded")
			}
			if !strings.Contains(c.banner(), "gatehouse: "+tc.banner+"\n") {
				t.Errorf("banner = %q, want %q", c.banner(), tc.banner)
			}
			if e.binds.bound(gossh.FingerprintSHA256(key.PublicKey())) {
				t.Error("key bound after a refused approval")
			}
		})
	}
}

// mfaSubject wraps the approver of a table case.
type mfaSubject struct{ s authz.Subject }
