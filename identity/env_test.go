package identity

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/internal/testlog"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
	"github.com/gatehouse-dev/gatehouse/store"
)

// clock is a settable time source shared by the store and identity.
type clock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recorder is an audit log that keeps events in memory and can be told to
// fail.
type recorder struct {
	audittest.Recorder
	mu   sync.Mutex // guards fail
	fail bool
}

func (r *recorder) Log(ctx context.Context, e audit.Event) error {
	r.mu.Lock()
	fail := r.fail
	r.mu.Unlock()
	if fail {
		return errors.New("audit sink down")
	}
	return r.Recorder.Log(ctx, e)
}

func (r *recorder) setFail(f bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = f
}

// find returns the events of type typ with the given decision.
func (r *recorder) find(typ, decision string) []audit.Event {
	return r.Find(func(e audit.Event) bool { return e.Type == typ && (decision == "" || e.Decision == decision) })
}

// env is one test's store, clock, audit log and Deps.
type env struct {
	clk   *clock
	st    *store.Bolt
	audit *recorder
	d     Deps
}

func newEnv(t testing.TB) *env {
	t.Helper()
	clk := &clock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	st, err := store.OpenBoltWith(filepath.Join(t.TempDir(), "state.db"), store.BoltOptions{Now: clk.Now})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	rec := &recorder{}
	return &env{clk: clk, st: st, audit: rec, d: Deps{
		Store: st, Audit: rec, Now: clk.Now,
		Logger: testlog.New(t), Secrets: secretstest.New(t),
	}}
}

func (e *env) ctx() context.Context {
	return WithClient(context.Background(), Client{Source: "192.0.2.7:51000", UserAgent: "test-agent"})
}

func (e *env) sessions(t testing.TB) *Sessions {
	t.Helper()
	s, err := NewSessions(e.d, SessionOptions{})
	if err != nil {
		t.Fatalf("NewSessions: %v", err)
	}
	return s
}

// fullSession starts a portal session for email on host and marks its MFA.
func (e *env) fullSession(t testing.TB, m *Sessions, email, host string) *Session {
	t.Helper()
	s, err := m.Start(e.ctx(), &Login{Email: email, Subject: "sub-" + email, Groups: []string{"eng"}, At: e.clk.Now()}, host)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	s, err = m.completeMFA(e.ctx(), s, e.clk.Now())
	if err != nil {
		t.Fatalf("completeMFA: %v", err)
	}
	return s
}

func TestDepsRequired(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name string
		d    Deps
	}{
		{"no store", Deps{Audit: e.audit}},
		{"no audit", Deps{Store: e.st}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewSessions(tc.d, SessionOptions{}); err == nil {
				t.Errorf("NewSessions(%s) = nil error, want error", tc.name)
			}
		})
	}
}
