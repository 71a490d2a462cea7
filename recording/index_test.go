package recording

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
)

func ids(ms []Meta) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestSearch(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	a := e.record(t, testMeta(), "\x1b[1;32mGreen\x1b[0mWord here\r\n", "cat /etc/pass", "wd\r\n")
	mb := testMeta()
	mb.User, mb.Kind, mb.Command = "bob@example.com", KindExec, "systemctl restart nginx"
	b := e.record(t, mb, "\x1b]0;title-secret\x07done greenword\r\n")
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"greenword", []string{a, b}},   // escapes stripped: "Green" + "Word" is one word
		{"GREENWORD here", []string{a}}, // case-insensitive, every word must match
		{"passwd", []string{a}},         // a word split between two writes, and a path part
		{"/etc/passwd", []string{a}},
		{"nginx", []string{b}}, // exec command
		{"title-secret", nil},  // OSC (window title) is not output text
		{"absent", nil},
	} {
		got, err := e.rec.List(ctx, Filter{Query: tc.q})
		if err != nil {
			t.Fatalf("List(%q): %v", tc.q, err)
		}
		g, w := ids(got), slices.Clone(tc.want)
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Errorf("search %q = %v, want %v", tc.q, g, w)
		}
	}
	if _, err := e.rec.List(ctx, Filter{Query: "a !"}); err != errNoWords {
		t.Errorf("query without words: %v, want errNoWords", err)
	}
}

func TestSearchEventCommands(t *testing.T) {
	e := newEnv(t, nil)
	w, err := e.rec.Start(t.Context(), testMeta())
	must(t, err)
	must(t, w.Event(Event{Type: EventExec, Fields: map[string]string{"command": "rm -rf /var/tmp/cache"}}))
	must(t, w.Event(Event{Type: EventSFTP, Fields: map[string]string{"op": "write", "path": "/home/u/upload.tgz"}}))
	must(t, w.Close("normal"))
	for _, q := range []string{"rm -rf", "upload.tgz"} {
		got, err := e.rec.List(t.Context(), Filter{Query: q})
		if err != nil || len(got) != 1 {
			t.Errorf("search %q = %v, %v", q, ids(got), err)
		}
	}
}

func TestListFilters(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := now
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return clock } })
	ctx := t.Context()
	start := func(user, target string, at time.Time, dur time.Duration) string {
		clock = at
		m := testMeta()
		m.User, m.Target = user, target
		w, err := e.rec.Start(ctx, m)
		must(t, err)
		clock = at.Add(dur)
		must(t, w.Close("normal"))
		return w.ID()
	}
	a := start("alice@example.com", "db", now.Add(-3*time.Hour), time.Minute)
	b := start("bob@example.com", "db", now.Add(-2*time.Hour), time.Hour)
	c := start("alice@example.com", "web", now.Add(-time.Hour), 10*time.Second)
	clock = now
	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all newest first", Filter{}, []string{c, b, a}},
		{"user, any case", Filter{User: "ALICE@example.com"}, []string{c, a}},
		{"target", Filter{Target: "db"}, []string{b, a}},
		{"since", Filter{Since: now.Add(-2 * time.Hour)}, []string{c, b}},
		{"until", Filter{Until: now.Add(-2 * time.Hour)}, []string{a}},
		{"min duration", Filter{MinDuration: time.Minute}, []string{b, a}},
		{"max duration", Filter{MaxDuration: time.Minute}, []string{c, a}},
		{"limit", Filter{Limit: 1}, []string{c}},
		{"status", Filter{Status: StatusLive}, nil},
	} {
		got, err := e.rec.List(ctx, tc.f)
		if err != nil || !slices.Equal(ids(got), tc.want) {
			t.Errorf("%s: List = %v, %v; want %v", tc.name, ids(got), err, tc.want)
		}
	}
}

// metaReads counts the reads of recording index entries.
type metaReads struct {
	store.Store
	gets, getManys atomic.Int64
}

func (m *metaReads) Get(ctx context.Context, key string) ([]byte, error) {
	if strings.HasPrefix(key, keyMeta) {
		m.gets.Add(1)
	}
	return m.Store.Get(ctx, key)
}

func (m *metaReads) GetMany(ctx context.Context, keys ...string) ([][]byte, error) {
	m.getManys.Add(1)
	return m.Store.GetMany(ctx, keys...)
}

// TestSearchReadsEntriesAtOnce: a search reads the entries of all its
// matches in one store read (one round trip to Redis, not one per match), and
// skips a match whose entry was deleted after its tokens were found.
func TestSearchReadsEntriesAtOnce(t *testing.T) {
	var mr *metaReads
	e := newEnv(t, func(c *Config) { mr = &metaReads{Store: c.Store}; c.Store = mr })
	ctx := t.Context()
	var all []string
	for range 3 {
		all = append(all, e.record(t, testMeta(), "deploy done\r\n"))
	}
	// The third's entry goes; its tokens stay.
	if err := e.store.Delete(ctx, keyMeta+all[2]); err != nil {
		t.Fatal(err)
	}
	mr.gets.Store(0)
	mr.getManys.Store(0)
	got, err := e.rec.List(ctx, Filter{Query: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	g := ids(got)
	slices.Sort(g)
	want := slices.Clone(all[:2])
	slices.Sort(want)
	if !slices.Equal(g, want) {
		t.Errorf("search = %v, want %v", g, want)
	}
	if mr.gets.Load() != 0 || mr.getManys.Load() != 1 {
		t.Errorf("search read entries with %d Get and %d GetMany calls, want one GetMany", mr.gets.Load(), mr.getManys.Load())
	}
}

// tokWrites counts the store writes of search tokens.
type tokWrites struct {
	store.Store
	sets, setManys, pairs atomic.Int64
}

func (s *tokWrites) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if strings.HasPrefix(key, keyTok) {
		s.sets.Add(1)
	}
	return s.Store.Set(ctx, key, v, ttl)
}

func (s *tokWrites) SetMany(ctx context.Context, kvs []store.KV, ttl time.Duration) error {
	s.setManys.Add(1)
	s.pairs.Add(int64(len(kvs)))
	return s.Store.SetMany(ctx, kvs, ttl)
}

// TestIndexWritesEachFlushAtOnce: log output brings thousands of new words;
// each flush writes its tokens with one store write, not one per word (an
// fsync each on the embedded store, a round trip each on Redis), and
// every word is found.
func TestIndexWritesEachFlushAtOnce(t *testing.T) {
	var tw *tokWrites
	e := newEnv(t, func(c *Config) { tw = &tokWrites{Store: c.Store}; c.Store = tw })
	w, err := e.rec.Start(t.Context(), testMeta())
	if err != nil {
		t.Fatal(err)
	}
	const lines = 1500 // about 50 KiB: under maxTextPerSecond, so all of it is indexed
	for i := range lines {
		if err := w.Output(fmt.Appendf(nil, "INFO request id=req%d status=200\r\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close("normal"); err != nil {
		t.Fatal(err)
	}
	if tw.sets.Load() != 0 || tw.pairs.Load() < lines || tw.setManys.Load() > tw.pairs.Load()/100 {
		t.Errorf("tokens written with %d Set and %d SetMany calls (%d tokens); want SetMany only, many tokens each",
			tw.sets.Load(), tw.setManys.Load(), tw.pairs.Load())
	}
	for _, q := range []string{"req0", "req700", fmt.Sprintf("req%d", lines-1)} {
		if got, err := e.rec.List(t.Context(), Filter{Query: q}); err != nil || len(got) != 1 {
			t.Errorf("search %q: %d results, %v; want 1", q, len(got), err)
		}
	}
}
