package sshgw

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
)

// Held and All complete fakeLocks: its map holds emails (people) and
// lock messages ("key/<fp>", "target/<name>").
func (f *fakeLocks) Held(ctx context.Context, refs ...identity.LockRef) (identity.LockRef, bool, error) {
	for _, r := range refs {
		if r.Name == "" {
			continue
		}
		if locked, err := f.Locked(ctx, string(r.Message())); err != nil || locked {
			return r, locked, err
		}
	}
	return identity.LockRef{}, false, nil
}

func (f *fakeLocks) All(context.Context) (identity.LockSet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var refs []identity.LockRef
	for k, v := range f.m {
		if v {
			refs = append(refs, identity.ParseLockMessage([]byte(k)))
		}
	}
	return identity.NewLockSet(refs...), nil
}

// lock locks r in f.
func (f *fakeLocks) lock(r identity.LockRef) { f.set(string(r.Message()), true) }

// downLocks is a lock store that cannot be read.
type downLocks struct {
	mu    sync.Mutex
	calls int // All calls
}

var errLocksDown = errors.New("store down")

func (d *downLocks) Held(context.Context, ...identity.LockRef) (identity.LockRef, bool, error) {
	return identity.LockRef{}, false, errLocksDown
}

func (d *downLocks) All(context.Context) (identity.LockSet, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return identity.LockSet{}, errLocksDown
}

// countingLocks counts All calls (store reads of the re-check).
type countingLocks struct {
	fakeLocks
	mu  sync.Mutex
	all int
}

func (c *countingLocks) All(ctx context.Context) (identity.LockSet, error) {
	c.mu.Lock()
	c.all++
	c.mu.Unlock()
	return c.fakeLocks.All(ctx)
}

func (c *countingLocks) allCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all
}

// liveConn adds an authenticated connection to s, as authentication
// would, over an in-memory pipe; it returns the conn.
func liveConn(t *testing.T, s *Server, email, fp, targetName string) *conn {
	t.Helper()
	server, client := net.Pipe()
	t.Cleanup(func() { client.Close() })
	c := s.newConn(s.ctx, server, jumpAddr{"pipe"}, nil, nil)
	a := &authResult{who: authz.Subject{Email: email}, fp: fp, method: "publickey", pol: s.policy()}
	if targetName != "" {
		a.target = &target{cfg: &config.Target{Name: targetName}, idle: time.Hour, maxLife: time.Hour}
		a.login = "ubuntu"
	}
	c.authenticated(a)
	return c
}

func TestRecheckLocksEndsLockedConnections(t *testing.T) {
	const fpA, fpB = "SHA256:aaa", "SHA256:bbb"
	synctest.Test(t, func(t *testing.T) {
		locks := &countingLocks{}
		al := &fakeAudit{}
		s, err := New(Config{Cfg: &config.Config{PublicURL: "https://gate.test"}, DataDir: t.TempDir(), Secrets: secretstest.New(t), Store: &memStore{},
			Approvals: newFakeApprovals(), Keys: newFakeBindings(), Locks: locks, Audit: al, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()
		synctest.Wait()

		conns := map[string]*conn{
			"ann on prod":      liveConn(t, s, "Ann@Example.com", fpA, "prod"),
			"bob key B on web": liveConn(t, s, "bob@example.com", fpB, "web"),
			"bob key A list":   liveConn(t, s, "bob@example.com", fpA, ""),
			"cat on db":        liveConn(t, s, "cat@example.com", "SHA256:ccc", "db"),
			"dan on prod":      liveConn(t, s, "dan@example.com", "SHA256:ddd", "prod"),
		}
		// Locks the lock channel never announced (a dropped message).
		locks.lock(identity.PersonLock("ann@example.com"))
		locks.lock(identity.KeyLock(fpB))
		locks.lock(identity.TargetLock("db"))
		time.Sleep(lockRecheckEvery - time.Millisecond)
		synctest.Wait()
		for name, c := range conns {
			if c.ctx.Err() != nil {
				t.Errorf("%s ended before the re-check", name)
			}
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		want := map[string]string{"ann on prod": "account locked", "bob key B on web": "key " + fpB + " is locked", "cat on db": "target db is locked"}
		for name, c := range conns {
			reason, _ := c.endReason()
			if w, ok := want[name]; ok {
				if c.ctx.Err() == nil || reason != w {
					t.Errorf("%s: ended = %v, reason %q; want ended, %q", name, c.ctx.Err() != nil, reason, w)
				}
			} else if c.ctx.Err() != nil {
				t.Errorf("%s ended (%q), want kept", name, reason)
			}
		}
		if n := locks.allCalls(); n != 1 {
			t.Errorf("store List calls in one period = %d, want 1 (one per tick, not per connection)", n)
		}
		if got := al.find(func(e audit.Event) bool { return e.Type == "ssh.end" && e.Reason == "target db is locked" }); len(got) != 1 {
			t.Errorf("ssh.end events for the target lock = %d, want 1", len(got))
		}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
}

func TestRecheckLocksStoreDownKeepsConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		locks := &downLocks{}
		s, err := New(Config{Cfg: &config.Config{PublicURL: "https://gate.test"}, DataDir: t.TempDir(), Secrets: secretstest.New(t), Store: &memStore{},
			Approvals: newFakeApprovals(), Keys: newFakeBindings(), Locks: locks, Audit: &fakeAudit{}, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()
		c := liveConn(t, s, "ann@example.com", "SHA256:aaa", "prod")
		time.Sleep(3 * lockRecheckEvery)
		synctest.Wait()
		if c.ctx.Err() != nil {
			t.Error("a connection ended because the locks could not be read")
		}
		locks.mu.Lock()
		calls := locks.calls
		locks.mu.Unlock()
		if calls != 3 {
			t.Errorf("re-checks in three periods = %d, want 3", calls)
		}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		<-served
	})
}

func TestKeyAndTargetLocks(t *testing.T) {
	tests := []struct {
		name    string
		lock    func(fp string) identity.LockRef
		user    string
		banner  string // "" = allowed
		approve bool   // the key is unbound: an approval is asked for
	}{
		{name: "key locked", lock: identity.KeyLock, user: "ubuntu@prod", banner: "key %s is locked"},
		{name: "key locked, list mode", lock: identity.KeyLock, user: "alice", banner: "key %s is locked"},
		{name: "unbound key locked: no approval", lock: identity.KeyLock, user: "ubuntu@prod", banner: "key %s is locked", approve: true},
		{name: "target locked", lock: func(string) identity.LockRef { return identity.TargetLock("prod") }, user: "ubuntu@prod", banner: "target prod is locked"},
		{name: "other target locked", lock: func(string) identity.LockRef { return identity.TargetLock("every") }, user: "ubuntu@prod"},
		{name: "other key locked", lock: func(string) identity.LockRef { return identity.KeyLock("SHA256:other") }, user: "ubuntu@prod"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Limits{}, nil)
			key := newSigner(t)
			fp := gossh.FingerprintSHA256(key.PublicKey())
			if !tc.approve {
				e.bind(key, alice)
			}
			e.locks.lock(tc.lock(fp))
			c := &client{user: tc.user, key: key, noKbd: !tc.approve}
			cl, err := e.dial(c)
			if tc.banner == "" {
				if err != nil {
					t.Fatalf("dial: %v (%q)", err, c.banner())
				}
				cl.Close()
				return
			}
			if err == nil {
				cl.Close()
				t.Fatal("login succeeded")
			}
			if want := "gatehouse: " + strings.ReplaceAll(tc.banner, "%s", fp); !strings.Contains(c.banner(), want) {
				t.Errorf("banner = %q, want %q", c.banner(), want)
			}
			if c.promptCount() != 0 {
				t.Error("an approval was asked for")
			}
			if e.target.lastCert() != nil {
				t.Error("target was contacted")
			}
		})
	}
}

// A target locked while the person was approving refuses the approval.
func TestTargetLockedDuringApproval(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	key := newSigner(t)
	go func() {
		select {
		case ap := <-e.approvals.created:
			e.locks.lock(identity.TargetLock("prod"))
			_ = e.approvals.decide(ap.ID, fresh(alice))
		case <-time.After(10 * time.Second):
		}
	}()
	c := &client{user: "ubuntu@prod", key: key}
	if cl, err := e.dial(c); err == nil {
		cl.Close()
		t.Fatal("login succeeded")
	}
	if !strings.Contains(c.banner(), "gatehouse: target prod is locked") {
		t.Errorf("banner = %q", c.banner())
	}
}

func TestLocksStoreDownRefusesNewConnections(t *testing.T) {
	e := newEnv(t, Limits{}, nil, func(c *Config) { c.Locks = &downLocks{} })
	key := newSigner(t)
	e.bind(key, alice)
	for _, user := range []string{"ubuntu@prod", "alice"} {
		c := &client{user: user, key: key, noKbd: true}
		if cl, err := e.dial(c); err == nil {
			cl.Close()
			t.Fatalf("%s: login succeeded while locks cannot be read", user)
		}
		if !strings.Contains(c.banner(), "gatehouse: "+msgUnavailable) {
			t.Errorf("%s: banner = %q", user, c.banner())
		}
	}
}

// A key or target lock published on the lock channel ends the matching
// live connections at once and leaves the others.
func TestKeyAndTargetLockMessagesEndConnections(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	dial := func(user string) (gossh.Signer, chan struct{}) {
		key := newSigner(t)
		e.bind(key, alice)
		cl, err := e.dial(&client{user: user, key: key, noKbd: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		ended := make(chan struct{})
		go func() { _ = cl.Wait(); close(ended) }()
		return key, ended
	}
	keyA, onProdA := dial("ubuntu@prod")
	_, onProdB := dial("ubuntu@prod")
	_, onViaca := dial("ubuntu@viaca")

	e.srv.onLock(identity.KeyLock(gossh.FingerprintSHA256(keyA.PublicKey())).Message())
	waitEnded(t, onProdA, "connection with the locked key")
	e.srv.onLock(identity.TargetLock("prod").Message())
	waitEnded(t, onProdB, "connection to the locked target")
	select {
	case <-onViaca:
		t.Error("connection to another target ended")
	default:
	}
}

func waitEnded(t *testing.T, ended chan struct{}, what string) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still open", what)
	}
}

// A locked person's SSH attempt is audited with audit.ReasonLocked, the
// reason the alerter's locked rule raises on.
func TestPersonLockAuditReason(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	key := newSigner(t)
	e.bind(key, alice)
	e.locks.lock(identity.PersonLock(alice.Email))
	c := &client{user: "ubuntu@prod", key: key, noKbd: true}
	if cl, err := e.dial(c); err == nil {
		cl.Close()
		t.Fatal("login succeeded")
	}
	if !strings.Contains(c.banner(), "gatehouse: account locked") {
		t.Errorf("banner = %q", c.banner())
	}
	got := e.audit.find(func(ev audit.Event) bool { return ev.Decision == audit.Deny && ev.Reason == audit.ReasonLocked })
	if len(got) == 0 {
		t.Errorf("no refusal audited with reason %q: %+v", audit.ReasonLocked, e.audit.find(func(audit.Event) bool { return true }))
	}
}

// hookAudit runs onAllow for each allowed ssh.auth event before keeping it.
type hookAudit struct {
	fakeAudit
	onAllow func()
}

func (h *hookAudit) Log(ctx context.Context, e audit.Event) error {
	if e.Type == "ssh.auth" && e.Decision == audit.Allow && h.onAllow != nil {
		h.onAllow()
	}
	return h.fakeAudit.Log(ctx, e)
}

// A lock placed while the login is being finished (target dialled, login
// audited), when a lock message would not yet match the connection, still
// ends the login at once instead of at the next periodic re-check.
func TestLockDuringLoginRefusesIt(t *testing.T) {
	ha := &hookAudit{}
	e := newEnv(t, Limits{}, nil, func(c *Config) { c.Audit = ha })
	ha.onAllow = func() { e.locks.lock(identity.PersonLock(alice.Email)) }
	key := newSigner(t)
	e.bind(key, alice)
	c := &client{user: "ubuntu@prod", key: key, noKbd: true}
	if cl, err := e.dial(c); err == nil {
		cl.Close()
		t.Fatal("a login locked while it was finished went through")
	}
	if !strings.Contains(c.banner(), "gatehouse: account locked") {
		t.Errorf("banner = %q", c.banner())
	}
}
