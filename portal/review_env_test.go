package portal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/recording"
)

// rvRecordings is a fake recorder: recordings in memory, the filters it
// was asked for, and live channels the test feeds.
type rvRecordings struct {
	mu      sync.Mutex
	metas   map[string]recording.Meta
	casts   map[string]string
	events  map[string][]recording.Event
	live    map[string]chan []byte
	filters []recording.Filter
	casted  int // Cast calls
}

func newRVRecordings() *rvRecordings {
	return &rvRecordings{metas: map[string]recording.Meta{}, casts: map[string]string{},
		events: map[string][]recording.Event{}, live: map[string]chan []byte{}}
}

func (f *rvRecordings) add(m recording.Meta, cast string, events ...recording.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metas[m.ID], f.casts[m.ID], f.events[m.ID] = m, cast, events
}

// List returns every recording in a random (map) order, so that the
// console's own newest-first sort is what the tests see.
func (f *rvRecordings) List(_ context.Context, flt recording.Filter) ([]recording.Meta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters = append(f.filters, flt)
	var out []recording.Meta
	for _, m := range f.metas {
		out = append(out, m)
	}
	if flt.Limit > 0 && len(out) > flt.Limit {
		sort.Slice(out, func(i, j int) bool { return out[i].Start.After(out[j].Start) })
		out = out[:flt.Limit]
	}
	return out, nil
}

func (f *rvRecordings) lastFilter(t *testing.T) recording.Filter {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.filters) == 0 {
		t.Fatal("List was never called")
	}
	return f.filters[len(f.filters)-1]
}

func (f *rvRecordings) Get(_ context.Context, id string) (recording.Meta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.metas[id]
	if !ok {
		return recording.Meta{}, recording.ErrNotFound
	}
	return m, nil
}

func (f *rvRecordings) Cast(_ context.Context, id string, w io.Writer) error {
	f.mu.Lock()
	c, ok := f.casts[id]
	f.casted++
	f.mu.Unlock()
	if !ok {
		return recording.ErrNotFound
	}
	_, err := io.WriteString(w, c)
	return err
}

func (f *rvRecordings) Events(_ context.Context, id string) ([]recording.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.metas[id]; !ok {
		return nil, recording.ErrNotFound
	}
	return f.events[id], nil
}

func (f *rvRecordings) Watch(_ context.Context, id string) (<-chan []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.live[id]
	if !ok {
		// As *recording.Recorder answers for a session that is not live
		// on this replica: a plain error, not ErrNotFound.
		return nil, fmt.Errorf("recording: %s is not live", id)
	}
	return ch, nil
}

// rvTerminations records Terminate calls.
type rvTerminations struct {
	mu    sync.Mutex
	calls [][2]string // session ID, by
	err   error
}

func (t *rvTerminations) Terminate(_ context.Context, sessionID, by string) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls = append(t.calls, [2]string{sessionID, by})
	return t.err == nil, t.err
}

func (t *rvTerminations) list() [][2]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][2]string(nil), t.calls...)
}

// rvAudit is the portal's audit log in these tests: e.audit, but failing
// the event types in fail.
type rvAudit struct {
	inner *ptAudit
	mu    sync.Mutex
	fail  map[string]bool
}

func (a *rvAudit) Log(ctx context.Context, e audit.Event) error {
	a.mu.Lock()
	fail := a.fail[e.Type]
	a.mu.Unlock()
	if fail {
		return errors.New("audit sink full")
	}
	return a.inner.Log(ctx, e)
}

// rvEnv is the portal test environment with the reviewer console on.
type rvEnv struct {
	*ptEnv
	rec   *rvRecordings
	term  *rvTerminations
	audit *rvAudit
	key   *ptKey
	locks *identity.Locks // ReviewConfig.Lock
}

// rvStart is when the seeded recordings start: an hour ago.
func rvStart() time.Time { return time.Now().Add(-time.Hour).UTC().Truncate(time.Second) }

func newRVEnv(t *testing.T) *rvEnv {
	t.Helper()
	e := newPTEnv(t)
	e.cfg.Reviewers = config.Allow{Groups: []string{"security"}}
	rv := &rvEnv{ptEnv: e, rec: newRVRecordings(), term: &rvTerminations{}, audit: &rvAudit{inner: e.audit, fail: map[string]bool{}}, key: newPTKey()}
	keys, err := identity.NewKeyBindings(e.deps)
	if err != nil {
		t.Fatal(err)
	}
	if rv.locks, err = identity.NewLocks(e.deps, e.sessions, keys); err != nil {
		t.Fatal(err)
	}
	p, err := NewPortal(PortalConfig{
		Config: e.cfg, OIDC: e.oidc, Sessions: e.sessions, WebAuthn: e.webauthn, Approvals: e.approvals, Limiter: e.limiter,
		Codec: e.codec, Audit: rv.audit, Logger: e.portal.logger, Now: e.clock.Now,
		Review: ReviewConfig{Recordings: rv.rec, Terminate: rv.term.Terminate, Lock: rv.locks.Lock},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The test server looks e.portal up on every request.
	e.portal = p
	start := rvStart()
	rv.rec.add(recording.Meta{ID: "rec-old", User: "ann@example.com", Target: "prod-db", Login: "ubuntu", SessionID: "conn-old",
		Kind: recording.KindShell, Start: start, End: start.Add(90 * time.Second), Status: recording.StatusComplete, EndReason: "normal",
		Width: 100, Height: 30}, `{"version":2,"width":100,"height":30}`+"\n"+`[0.5,"o","hello from the old one\r\n"]`+"\n",
		recording.Event{Time: start.Add(65 * time.Second), Type: recording.EventExec, Fields: map[string]string{"command": "cat /etc/shadow", "status": "1"}},
		recording.Event{Time: start.Add(89 * time.Second), Type: recording.EventEnd, Fields: map[string]string{"reason": "normal"}})
	rv.rec.add(recording.Meta{ID: "rec-mid", User: "bob@example.com", Target: "web", Login: "root", SessionID: "conn-mid",
		Kind: recording.KindExec, Command: "uptime", Start: start.Add(10 * time.Minute), End: start.Add(11 * time.Minute),
		Status: recording.StatusIncomplete}, `{"version":2,"width":80,"height":24}`+"\n")
	rv.rec.add(recording.Meta{ID: "rec-live", User: "cy@example.com", Target: "prod-db", Login: "postgres", SessionID: "conn-live",
		Kind: recording.KindShell, Start: start.Add(50 * time.Minute), Status: recording.StatusLive, Width: 80, Height: 24},
		`{"version":2,"width":80,"height":24}`+"\n")
	return rv
}

// reviewer signs a reviewer in (group security) with rv.key and returns
// the client and the console's list page.
func (rv *rvEnv) reviewer(email string, groups ...string) (*http.Client, ptResp) {
	rv.t.Helper()
	c := rv.client()
	res := rv.login(c, rv.key, "https://gate.test/review/", email, groups...)
	return c, res
}

// terminate posts the Terminate form of recording id with token csrf.
func (rv *rvEnv) terminate(c *http.Client, id, csrf, rd, origin string) ptResp {
	rv.t.Helper()
	v := map[string][]string{"rd": {rd}}
	if csrf != "" {
		v["csrf"] = []string{csrf}
	}
	return rv.postForm(c, "https://gate.test/review/s/"+id+"/terminate", v, origin)
}

// csrfOf returns the page's CSRF token (the sign-out form's field).
func csrfOf(t *testing.T, body string) string {
	t.Helper()
	const mark = `name="csrf" value="`
	i := strings.Index(body, mark)
	if i < 0 {
		t.Fatal("page has no CSRF field")
	}
	rest := body[i+len(mark):]
	return htmlUnescape(rest[:strings.IndexByte(rest, '"')])
}
