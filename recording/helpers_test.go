package recording

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/internal/testlog"
	"github.com/gatehouse-dev/gatehouse/store"
)

// fakeAudit keeps the events it is given.
type fakeAudit struct{ audittest.Recorder }

func (a *fakeAudit) ofType(typ string) []audit.Event {
	return a.Find(func(e audit.Event) bool { return e.Type == typ })
}

type env struct {
	rec   *Recorder
	store store.Store
	audit *fakeAudit
	dir   string // data dir
}

// newEnv builds a recorder on a fresh data dir with a bbolt store; mod
// adjusts the config.
func newEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{store: st, audit: &fakeAudit{}, dir: dir}
	c := Config{Dir: filepath.Join(dir, "recordings"), Keys: testVault(t, dir), Store: st, Audit: e.audit,
		Logger: testlog.New(t), Replica: "r1", FlushInterval: 50 * time.Millisecond}
	if mod != nil {
		mod(&c)
	}
	if e.rec, err = New(c); err != nil {
		t.Fatal(err)
	}
	return e
}

func testMeta() Meta {
	return Meta{User: "alice@example.com", Target: "prod-db", Login: "ubuntu", SessionID: "sess-1",
		Source: "192.0.2.1:5555", Kind: KindShell, Width: 100, Height: 30, Term: "xterm-256color"}
}

// record writes a small session and closes it.
func (e *env) record(t testing.TB, m Meta, outputs ...string) string {
	t.Helper()
	w, err := e.rec.Start(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outputs {
		if err := w.Output([]byte(o)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close("normal"); err != nil {
		t.Fatal(err)
	}
	return w.ID()
}

func (e *env) cast(t testing.TB, id string) string {
	t.Helper()
	var b bytes.Buffer
	if err := e.rec.Cast(t.Context(), id, &b); err != nil {
		t.Fatalf("Cast: %v", err)
	}
	return b.String()
}
