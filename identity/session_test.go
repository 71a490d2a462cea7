package identity

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/google/go-cmp/cmp"
)

const portal = "gate.example.com"

func TestSessionLifecycle(t *testing.T) {
	e := newEnv(t)
	m := e.sessions(t)
	ctx := e.ctx()
	s, err := m.Start(ctx, &Login{Email: "Ann@Example.com", Subject: "u1", Groups: []string{"eng"}, At: e.clk.Now()}, "Gate.Example.com")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !s.Pending() || s.ID == "" || s.Handle != hashToken(s.ID) {
		t.Fatalf("Start = %+v: want a pending session with ID and handle", s)
	}
	if s.Source != "192.0.2.7:51000" || s.UserAgent != "test-agent" {
		t.Errorf("client info not recorded: %q %q", s.Source, s.UserAgent)
	}
	// The store never holds the secret ID.
	kvs, _ := e.st.List(ctx, "identity/")
	for _, kv := range kvs {
		if strings.Contains(kv.Key, s.ID) || strings.Contains(string(kv.Value), s.ID) {
			t.Fatalf("store key %q holds the session ID", kv.Key)
		}
	}
	got, err := m.Lookup(ctx, s.ID, portal)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if diff := cmp.Diff(s, got); diff != "" {
		t.Errorf("Lookup differs from Start (-start +lookup):\n%s", diff)
	}
	if _, err := m.Lookup(ctx, s.ID, "grafana.example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup on another host = %v, want ErrNotFound", err)
	}
	if _, err := m.Lookup(ctx, s.ID+"x", portal); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup of a wrong ID = %v, want ErrNotFound", err)
	}
	// A pending session dies after PendingTTL.
	e.clk.Advance(PendingTTL)
	if _, err := m.Lookup(ctx, s.ID, portal); !errors.Is(err, ErrNotFound) {
		t.Errorf("pending session after PendingTTL: %v, want ErrNotFound", err)
	}
}

func TestSessionIdleAndAbsolute(t *testing.T) {
	e := newEnv(t)
	m := e.sessions(t)
	ctx := e.ctx()
	s := e.fullSession(t, m, "ann@example.com", portal)
	// Used every 50 minutes it stays alive (idle 1h) until the absolute end.
	for elapsed := time.Duration(0); elapsed+50*time.Minute < DefaultSessionMaxAge; elapsed += 50 * time.Minute {
		e.clk.Advance(50 * time.Minute)
		if _, err := m.Lookup(ctx, s.ID, portal); err != nil {
			t.Fatalf("Lookup after %v: %v", elapsed+50*time.Minute, err)
		}
	}
	e.clk.Advance(50 * time.Minute)
	if _, err := m.Lookup(ctx, s.ID, portal); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup past the absolute lifetime = %v, want ErrNotFound", err)
	}
	s2 := e.fullSession(t, m, "ann@example.com", portal)
	e.clk.Advance(DefaultSessionIdle + time.Second)
	if _, err := m.Lookup(ctx, s2.ID, portal); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup after idle timeout = %v, want ErrNotFound", err)
	}
}

func TestRevokeWinsOverTouch(t *testing.T) {
	e := newEnv(t)
	m := e.sessions(t)
	ctx := e.ctx()
	s := e.fullSession(t, m, "ann@example.com", portal)
	_, raw, err := m.load(ctx, s.Handle)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(ctx, s.Handle); err != nil {
		t.Fatal(err)
	}
	// A lookup that read the record before the revoke must not write it back.
	if _, err := m.update(ctx, s.Handle, raw, func(rec *Session) error { rec.LastSeen = e.clk.Now(); return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("touch after revoke = %v, want ErrNotFound", err)
	}
	if _, err := m.Lookup(ctx, s.ID, portal); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoked session still found: %v", err)
	}
	if len(e.audit.find(EventSessionEnd, "")) != 1 {
		t.Errorf("revocation not audited")
	}
}

func TestHandoff(t *testing.T) {
	e := newEnv(t)
	m := e.sessions(t)
	ctx := e.ctx()
	const app = "grafana.example.com"

	pending, err := m.Start(ctx, &Login{Email: "ann@example.com", At: e.clk.Now()}, portal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := issueHandoff(m, ctx, pending.ID, app, "/"); !errors.Is(err, ErrMFARequired) {
		t.Errorf("IssueHandoff for a pending session = %v, want ErrMFARequired", err)
	}
	p := e.fullSession(t, m, "ann@example.com", portal)
	for _, bad := range []string{"//evil.example", "https://evil.example/", `/\evil`} {
		if _, err := issueHandoff(m, ctx, p.ID, app, bad); !errors.Is(err, ErrForbidden) {
			t.Errorf("IssueHandoff(path %q) = %v, want ErrForbidden", bad, err)
		}
	}

	code, err := issueHandoff(m, ctx, p.ID, app, "/d/abc?x=1")
	if err != nil {
		t.Fatalf("IssueHandoff: %v", err)
	}
	as, path, err := redeemHandoff(m, ctx, code, "GRAFANA.example.com")
	if err != nil {
		t.Fatalf("RedeemHandoff: %v", err)
	}
	if path != "/d/abc?x=1" || as.Host != app || as.Parent != p.Handle || as.Email != "ann@example.com" || as.MFAAt != p.MFAAt {
		t.Errorf("RedeemHandoff = %+v, %q", as, path)
	}
	if as.ID == p.ID {
		t.Fatalf("app session reuses the portal session ID")
	}
	// Single use.
	if _, _, err := redeemHandoff(m, ctx, code, app); !errors.Is(err, ErrNotFound) {
		t.Errorf("second RedeemHandoff = %v, want ErrNotFound", err)
	}
	// The app session works only on its host.
	if _, err := m.Lookup(ctx, as.ID, app); err != nil {
		t.Errorf("Lookup app session: %v", err)
	}
	if _, err := m.Lookup(ctx, as.ID, portal); !errors.Is(err, ErrNotFound) {
		t.Errorf("app session on the portal host = %v, want ErrNotFound", err)
	}

	// Host binding: a code redeemed on another host fails and is burnt.
	code2, _ := issueHandoff(m, ctx, p.ID, app, "/")
	if _, _, err := redeemHandoff(m, ctx, code2, "evil.example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RedeemHandoff on another host = %v, want ErrNotFound", err)
	}
	if _, _, err := redeemHandoff(m, ctx, code2, app); !errors.Is(err, ErrNotFound) {
		t.Errorf("code burnt on another host still redeems: %v", err)
	}

	// Expiry.
	code3, _ := issueHandoff(m, ctx, p.ID, app, "/")
	e.clk.Advance(HandoffTTL + time.Second)
	if _, _, err := redeemHandoff(m, ctx, code3, app); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired code = %v, want ErrNotFound", err)
	}

	// Step-up on the portal shows in the app session at once.
	later := e.clk.Now()
	if _, err := m.completeMFA(ctx, p, later); err != nil {
		t.Fatal(err)
	}
	got, err := m.Lookup(ctx, as.ID, app)
	if err != nil || !got.MFAAt.Equal(later) {
		t.Errorf("app session MFAAt = %v, %v; want %v", got.MFAAt, err, later)
	}

	// Revoking the portal session ends the app session immediately.
	if err := m.Revoke(ctx, p.Handle); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Lookup(ctx, as.ID, app); !errors.Is(err, ErrNotFound) {
		t.Errorf("app session after portal revoke = %v, want ErrNotFound", err)
	}
	if len(e.audit.find(EventHandoff, "deny")) < 2 {
		t.Errorf("refused handoffs not audited: %+v", e.audit.find(EventHandoff, ""))
	}
}

func TestAppSessionKeepsPortalAlive(t *testing.T) {
	e := newEnv(t)
	m := e.sessions(t)
	ctx := e.ctx()
	p := e.fullSession(t, m, "ann@example.com", portal)
	code, _ := issueHandoff(m, ctx, p.ID, "app.example.com", "/")
	as, _, err := redeemHandoff(m, ctx, code, "app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	// Only the app is used for 3 hours: the portal session must not idle out
	// underneath it.
	for i := 0; i < 6; i++ {
		e.clk.Advance(30 * time.Minute)
		if _, err := m.Lookup(ctx, as.ID, "app.example.com"); err != nil {
			t.Fatalf("app Lookup after %d×30m: %v", i+1, err)
		}
	}
	if _, err := m.Lookup(ctx, p.ID, portal); err != nil {
		t.Errorf("portal session idled out while its app was in use: %v", err)
	}
}

func TestAppSessionEndsWithPortalSession(t *testing.T) {
	e := newEnv(t)
	m := e.sessions(t)
	ctx := e.ctx()
	p := e.fullSession(t, m, "ann@example.com", portal)
	code, _ := issueHandoff(m, ctx, p.ID, "app.example.com", "/")
	as, _, err := redeemHandoff(m, ctx, code, "app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	// The portal record vanishes without Revoke (e.g. deleted by hand): the
	// app session notices at its next touch.
	if err := e.st.Delete(ctx, sessionKey(p.Handle)); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(touchEvery)
	if _, err := m.Lookup(ctx, as.ID, "app.example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("app session without its portal session = %v, want ErrNotFound", err)
	}
	// A handoff redeemed after the portal session was revoked fails, and
	// leaves no app session behind.
	p2 := e.fullSession(t, m, "ann@example.com", portal)
	code2, _ := issueHandoff(m, ctx, p2.ID, "app.example.com", "/")
	if err := m.Revoke(ctx, p2.Handle); err != nil {
		t.Fatal(err)
	}
	if _, _, err := redeemHandoff(m, ctx, code2, "app.example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RedeemHandoff after revoke = %v, want ErrNotFound", err)
	}
	if kvs, _ := e.st.List(ctx, childPrefix(p2.Handle)); len(kvs) != 0 {
		t.Errorf("app session index left behind: %v", kvs)
	}
}

// hookStore runs onSet after every successful Set.
type hookStore struct {
	*store.Bolt
	onSet func(key string)
}

func (h hookStore) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if err := h.Bolt.Set(ctx, key, v, ttl); err != nil {
		return err
	}
	if h.onSet != nil {
		h.onSet(key)
	}
	return nil
}

func TestRedeemRacingRevoke(t *testing.T) {
	e := newEnv(t)
	hs := &hookStore{Bolt: e.st}
	d := e.d
	d.Store = hs
	m, _ := NewSessions(d, SessionOptions{})
	ctx := e.ctx()
	p := e.fullSession(t, m, "ann@example.com", portal)
	code, _ := issueHandoff(m, ctx, p.ID, "app.example.com", "/")
	// The portal session is revoked right after RedeemHandoff indexed its
	// new app session, before the app session record is written.
	hs.onSet = func(key string) {
		if strings.HasPrefix(key, childPrefix(p.Handle)) {
			hs.onSet = nil
			if err := m.Revoke(ctx, p.Handle); err != nil {
				t.Errorf("Revoke: %v", err)
			}
		}
	}
	as, _, err := redeemHandoff(m, ctx, code, "app.example.com")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("RedeemHandoff racing a revoke = %+v, %v; want ErrNotFound", as, err)
	}
	if kvs, _ := e.st.List(ctx, "identity/session/"); len(kvs) != 0 {
		t.Errorf("sessions left after the race: %d", len(kvs))
	}
}

func TestRevokeAllAndList(t *testing.T) {
	e := newEnv(t)
	m := e.sessions(t)
	ctx := e.ctx()
	a1 := e.fullSession(t, m, "ann@example.com", portal)
	e.clk.Advance(time.Minute)
	a2 := e.fullSession(t, m, "ANN@example.com", portal)
	b := e.fullSession(t, m, "bob@example.com", portal)
	code, _ := issueHandoff(m, ctx, a1.ID, "app.example.com", "/")
	app, _, _ := redeemHandoff(m, ctx, code, "app.example.com")

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	revoked, err := e.st.Subscribe(sctx, RevokeChannel)
	if err != nil {
		t.Fatal(err)
	}
	list, err := m.List(ctx, "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	var handles []string
	for _, s := range list {
		handles = append(handles, s.Handle)
		if s.ID != "" {
			t.Errorf("List exposes a session ID")
		}
	}
	if diff := cmp.Diff([]string{a2.Handle, a1.Handle}, handles); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	n, err := m.RevokeAll(ctx, "ann@example.com")
	if err != nil || n != 2 {
		t.Fatalf("RevokeAll = %d, %v; want 2", n, err)
	}
	for _, id := range []string{a1.ID, a2.ID} {
		if _, err := m.Lookup(ctx, id, portal); !errors.Is(err, ErrNotFound) {
			t.Errorf("session survived RevokeAll: %v", err)
		}
	}
	if _, err := m.Lookup(ctx, app.ID, "app.example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("app session survived RevokeAll: %v", err)
	}
	if _, err := m.Lookup(ctx, b.ID, portal); err != nil {
		t.Errorf("another user's session was revoked: %v", err)
	}
	got := map[string]bool{}
	for len(got) < 3 {
		select {
		case h := <-revoked:
			got[string(h)] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("revocations announced: %v; want a1, a2 and the app session", got)
		}
	}
	if diff := cmp.Diff(map[string]bool{a1.Handle: true, a2.Handle: true, app.Handle: true}, got); diff != "" {
		t.Errorf("announced handles (-want +got):\n%s", diff)
	}
}

// TestLookupConcurrentTouch has many requests of one session arrive when
// its LastSeen is due for a refresh, as a busy app host does once a minute.
// Losing the refresh race must not fail the request: someone else just
// refreshed the session.
func TestLookupConcurrentTouch(t *testing.T) {
	e := newEnv(t)
	// Every reading a microsecond later, as on a real clock: with a frozen
	// clock every touch writes the same bytes and compare-and-swap cannot
	// conflict, so the race this test is about never happens.
	e.d.Now = func() time.Time { e.clk.Advance(time.Microsecond); return e.clk.Now() }
	m := e.sessions(t)
	s := e.fullSession(t, m, "ann@example.com", portal)
	for round := range 3 {
		e.clk.Advance(2 * touchEvery)
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := m.Lookup(e.ctx(), s.ID, portal); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: concurrent Lookup = %v, want the session", round, err)
		}
	}
	// Revocation still wins over a touch.
	if err := m.Revoke(e.ctx(), s.Handle); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(2 * touchEvery)
	if _, err := m.Lookup(e.ctx(), s.ID, portal); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup after Revoke = %v, want ErrNotFound", err)
	}
}
