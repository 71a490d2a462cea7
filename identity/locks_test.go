package identity

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/google/go-cmp/cmp"
)

func TestKeyBindings(t *testing.T) {
	e := newEnv(t)
	k, err := NewKeyBindings(e.d)
	if err != nil {
		t.Fatal(err)
	}
	ctx := e.ctx()
	subj := authz.Subject{Email: "ann@example.com", Groups: []string{"sre"}, MFAAt: e.clk.Now()}
	if err := k.Bind(ctx, "SHA256:abc/def+1", subj, time.Hour); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	got, err := k.Lookup(ctx, "SHA256:abc/def+1")
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if diff := cmp.Diff(subj, got); diff != "" {
		t.Errorf("Lookup (-want +got):\n%s", diff)
	}
	if _, err := k.Lookup(ctx, "SHA256:other"); !errors.Is(err, store.ErrNotFound) || !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(unknown) = %v, want store.ErrNotFound", err)
	}
	for _, bad := range []time.Duration{0, -time.Second} {
		if err := k.Bind(ctx, "SHA256:x", subj, bad); err == nil {
			t.Errorf("Bind(ttl %v) accepted", bad)
		}
	}
	e.clk.Advance(time.Hour)
	if _, err := k.Lookup(ctx, "SHA256:abc/def+1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Lookup after ttl = %v, want store.ErrNotFound", err)
	}
}

func TestLock(t *testing.T) {
	e := newEnv(t)
	m := e.sessions(t)
	k, _ := NewKeyBindings(e.d)
	l, err := NewLocks(e.d, m, k)
	if err != nil {
		t.Fatal(err)
	}
	ctx := e.ctx()
	s := e.fullSession(t, m, "ann@example.com", portal)
	other := e.fullSession(t, m, "bob@example.com", portal)
	subj := authz.Subject{Email: "ann@example.com", MFAAt: e.clk.Now()}
	if err := k.Bind(ctx, "SHA256:ann1", subj, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := k.Bind(ctx, "SHA256:bob1", authz.Subject{Email: "bob@example.com", MFAAt: e.clk.Now()}, time.Hour); err != nil {
		t.Fatal(err)
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	notes, err := e.st.Subscribe(sctx, LockChannel)
	if err != nil {
		t.Fatal(err)
	}

	if err := l.Lock(ctx, "Ann@Example.com", "sec@example.com", "stolen laptop"); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	select {
	case msg := <-notes:
		if string(msg) != "ann@example.com" {
			t.Errorf("lock message = %q", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message on the lock channel")
	}
	if locked, err := l.Locked(ctx, "ann@example.com"); err != nil || !locked {
		t.Errorf("Locked = %v, %v; want true", locked, err)
	}
	if _, err := e.st.Get(ctx, "lock/ann@example.com"); err != nil {
		t.Errorf("lock key lock/ann@example.com: %v", err)
	}
	if _, err := m.Lookup(ctx, s.ID, portal); !errors.Is(err, ErrNotFound) {
		t.Errorf("session survived the lock: %v", err)
	}
	if _, err := k.Lookup(ctx, "SHA256:ann1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("key binding survived the lock: %v", err)
	}
	if _, err := m.Lookup(ctx, other.ID, portal); err != nil {
		t.Errorf("other user's session revoked: %v", err)
	}
	if _, err := k.Lookup(ctx, "SHA256:bob1"); err != nil {
		t.Errorf("other user's key unbound: %v", err)
	}
	// Locked people can neither log in nor bind keys.
	if _, err := m.Start(ctx, &Login{Email: "ann@example.com"}, portal); !errors.Is(err, ErrLocked) {
		t.Errorf("Start while locked = %v, want ErrLocked", err)
	}
	// The attempt is audited as a refusal for the alerter's locked rule.
	if ev := e.audit.find(EventSSOLogin, "deny"); len(ev) != 1 || ev[0].Actor != "ann@example.com" || ev[0].Reason != audit.ReasonLocked {
		t.Errorf("locked sign-in audit = %+v, want one refusal with reason %q", ev, audit.ReasonLocked)
	}
	if err := k.Bind(ctx, "SHA256:ann2", subj, time.Hour); !errors.Is(err, ErrLocked) {
		t.Errorf("Bind while locked = %v, want ErrLocked", err)
	}
	if ev := e.audit.find(EventLock, "allow"); len(ev) != 1 || ev[0].Actor != "sec@example.com" || ev[0].Reason != "stolen laptop" {
		t.Errorf("lock audit = %+v", ev)
	}

	if err := l.Unlock(ctx, "ann@example.com", "sec@example.com"); err != nil {
		t.Fatal(err)
	}
	if locked, _ := l.Locked(ctx, "ann@example.com"); locked {
		t.Errorf("still locked after Unlock")
	}
	if _, err := m.Start(ctx, &Login{Email: "ann@example.com"}, portal); err != nil {
		t.Errorf("Start after unlock: %v", err)
	}
}
