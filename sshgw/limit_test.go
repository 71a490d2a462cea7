package sshgw

import (
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// settle runs a command on cl and closes it. The round trip means the
// server has finished its side of the handshake: gliderlabs' Shutdown
// races with a handshake that completes while it waits (connWg.Add after
// Wait), which the race detector reports.
func settle(t testing.TB, cl *gossh.Client) {
	t.Helper()
	if out, _, code := run(t, cl, "echo ok", ""); out != "ok\n" || code != 0 {
		t.Errorf("session: %q, %d", out, code)
	}
	cl.Close()
}

// rateLimited dials with c and reports whether the gateway refused it as
// rate limited.
func (e *env) rateLimited(c *client) bool {
	e.t.Helper()
	cl, err := e.dial(c)
	if err == nil {
		settle(e.t, cl)
		return false
	}
	return strings.Contains(c.banner(), msgRateLimited)
}

// A noisy unbound key exhausts its source's failure limit; a key with a
// valid binding from the same address still logs in (NAT).
func TestRateLimitPerSourceCountsOnlyFailures(t *testing.T) {
	e := newEnv(t, Limits{AuthPerSource: Limit{N: 2, Window: time.Minute}}, nil)
	noisy := newSigner(t)
	for i := range 2 {
		if e.rateLimited(&client{user: "ubuntu@prod", key: noisy, noKbd: true}) {
			t.Fatalf("unbound attempt %d rate limited", i+1)
		}
	}
	if !e.rateLimited(&client{user: "ubuntu@prod", key: noisy, noKbd: true}) {
		t.Fatal("third unbound attempt from the source was not rate limited")
	}
	e.audit.waitFor(t, "rate limit refusal", func(ev audit.Event) bool {
		return ev.Type == "ssh.auth" && ev.Decision == audit.Deny && strings.HasPrefix(ev.Reason, "auth rate limit")
	})
	// Another unbound key from the same source is limited too.
	if !e.rateLimited(&client{user: "ubuntu@prod", key: newSigner(t), noKbd: true}) {
		t.Error("another unbound key from the limited source was not rate limited")
	}
	bound := newSigner(t)
	e.bind(bound, alice)
	for i := range 3 {
		cl, err := e.dial(&client{user: "ubuntu@prod", key: bound, noKbd: true})
		if err != nil {
			t.Fatalf("bound key, attempt %d, from the noisy source: %v", i+1, err)
		}
		settle(t, cl)
	}
}

// One key that hammers the gateway is limited per (source, key); another
// key from the same address is not.
func TestRateLimitPerSourceAndKey(t *testing.T) {
	e := newEnv(t, Limits{AuthPerKey: Limit{N: 2, Window: time.Minute}}, nil)
	noisy, other := newSigner(t), newSigner(t)
	e.bind(noisy, alice)
	e.bind(other, alice)
	for i := range 2 {
		if e.rateLimited(&client{user: "ubuntu@prod", key: noisy, noKbd: true}) {
			t.Fatalf("attempt %d rate limited", i+1)
		}
	}
	if !e.rateLimited(&client{user: "ubuntu@prod", key: noisy, noKbd: true}) {
		t.Fatal("third proof of one key in the window was not rate limited")
	}
	cl, err := e.dial(&client{user: "ubuntu@prod", key: other, noKbd: true})
	if err != nil {
		t.Fatalf("another bound key from the same source: %v", err)
	}
	settle(t, cl)
}
