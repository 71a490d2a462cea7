package recording

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	w, err := e.rec.Start(ctx, testMeta())
	if err != nil {
		t.Fatal(err)
	}
	if m, err := e.rec.Get(ctx, w.ID()); err != nil || m.Status != StatusLive || m.Replica != "r1" {
		t.Fatalf("Get while live = %+v, %v", m, err)
	}
	must(t, w.Output([]byte("$ ls\r\n")))
	must(t, w.Resize(120, 40))
	must(t, w.Event(Event{Type: EventExec, Fields: map[string]string{"command": "uname -a"}}))
	must(t, w.Output([]byte("Linux \xe2\x9c")))
	must(t, w.Output([]byte("\x93 ok\r\n"))) // a rune split between two writes
	must(t, w.Close("normal"))
	if err := w.Output([]byte("late")); err == nil {
		t.Error("Output after Close succeeded")
	}

	cast := e.cast(t, w.ID())
	lines := strings.Split(strings.TrimSuffix(cast, "\n"), "\n")
	var h castHeader
	if err := json.Unmarshal([]byte(lines[0]), &h); err != nil {
		t.Fatalf("header %q: %v", lines[0], err)
	}
	if h.Version != 2 || h.Width != 100 || h.Height != 30 || h.Gatehouse.User != "alice@example.com" ||
		h.Gatehouse.ID != w.ID() || h.Env["TERM"] != "xterm-256color" {
		t.Errorf("header = %+v", h)
	}
	var out strings.Builder
	var codes []string
	for _, l := range lines[1:] {
		var ev []any
		if err := json.Unmarshal([]byte(l), &ev); err != nil || len(ev) != 3 {
			t.Fatalf("event line %q: %v", l, err)
		}
		codes = append(codes, ev[1].(string))
		if ev[1] == "o" {
			out.WriteString(ev[2].(string))
		}
	}
	if got, want := out.String(), "$ ls\r\nLinux ✓ ok\r\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
	if got := strings.Join(codes, ","); got != "o,r,m,o" {
		t.Errorf("event codes = %s, want o,r,m,o", got)
	}
	evs, err := e.rec.Events(ctx, w.ID())
	if err != nil || len(evs) != 1 || evs[0].Fields["command"] != "uname -a" {
		t.Errorf("Events = %+v, %v", evs, err)
	}
	m, err := e.rec.Get(ctx, w.ID())
	if err != nil || m.Status != StatusComplete || m.EndReason != "normal" || m.Bytes != int64(len("$ ls\r\nLinux \xe2\x9c\x93 ok\r\n")) || m.Seal == "" || m.End.IsZero() {
		t.Errorf("Get after Close = %+v, %v", m, err)
	}
	seals := e.audit.ofType("recording.seal")
	if len(seals) != 1 || seals[0].Details["seal"] != m.Seal || seals[0].Details["recording"] != w.ID() {
		t.Errorf("seal audit events = %+v", seals)
	}
	rep, err := e.rec.Verify(ctx, w.ID())
	if err != nil || !rep.OK || !rep.Complete || len(rep.Problems) != 0 {
		t.Errorf("Verify = %+v, %v", rep, err)
	}
}

// TestNoPersonalDataInClear: the file and the store hold neither the
// person, the target, the output nor the words.
func TestNoPersonalDataInClear(t *testing.T) {
	e := newEnv(t, nil)
	id := e.record(t, testMeta(), "topsecretword printed\r\n")
	b, err := os.ReadFile(e.rec.path(id))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"alice", "prod-db", "topsecretword", "ubuntu"} {
		if strings.Contains(string(b), s) {
			t.Errorf("recording file contains %q in clear", s)
		}
	}
	kvs, err := e.store.List(t.Context(), keyTok)
	if err != nil || len(kvs) == 0 {
		t.Fatalf("tokens = %d, %v", len(kvs), err)
	}
	for _, kv := range kvs {
		if strings.Contains(kv.Key, "topsecretword") || strings.Contains(kv.Key, "printed") {
			t.Errorf("token key %q holds a word in clear", kv.Key)
		}
	}
	fi, err := os.Stat(e.rec.path(id))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, %v", fi.Mode(), err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentWriters: Output, Resize and Event from several goroutines
// while timer flushes run; every output byte ends up in the cast, in each
// goroutine's order.
func TestConcurrentWriters(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.FlushInterval = time.Millisecond })
	w, err := e.rec.Start(t.Context(), testMeta())
	must(t, err)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				must(t, w.Output(fmt.Appendf(nil, "g%d-%03d;", g, i)))
				if i%50 == 0 {
					must(t, w.Resize(80+g, 24))
					must(t, w.Event(Event{Type: EventExec, Fields: map[string]string{"command": "x"}}))
				}
			}
		})
	}
	wg.Wait()
	must(t, w.Close("normal"))
	var out strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(e.cast(t, w.ID())), "\n")[1:] {
		var ev []any
		must(t, json.Unmarshal([]byte(l), &ev))
		if ev[1] == "o" {
			out.WriteString(ev[2].(string))
		}
	}
	for g := range 4 {
		last := -1
		for _, tok := range strings.Split(out.String(), ";") {
			var gg, i int
			if n, _ := fmt.Sscanf(tok, "g%d-%d", &gg, &i); n == 2 && gg == g {
				if i != last+1 {
					t.Fatalf("goroutine %d: %d after %d", g, i, last)
				}
				last = i
			}
		}
		if last != 199 {
			t.Errorf("goroutine %d: last output %d, want 199", g, last)
		}
	}
	if rep := problems(t, e, w.ID()); !rep.OK {
		t.Errorf("verify: %q", rep.Problems)
	}
}
