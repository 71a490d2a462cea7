package recording

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOutputLines pins the "o" lines a sequence of writes becomes: writes
// closer than coalesceWindow share a line, a line holds at most
// maxPendingOut bytes cut on rune boundaries, a rune split between two
// writes is not cut, and an event or resize ends the pending line. The
// flusher encodes lines after the writes returned, so this guards the
// on-disk format against changes in when and where encoding happens.
func TestOutputLines(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	e := newEnv(t, func(c *Config) { c.Now = clock; c.FlushInterval = time.Hour })
	w, err := e.rec.Start(t.Context(), testMeta())
	must(t, err)
	big := strings.Repeat("é", 9000) // 18000 bytes: two lines, cut between runes
	steps := []struct {
		after time.Duration
		out   string
		event bool
	}{
		{0, "$ ", false},
		{5 * time.Millisecond, "ls\r\n", false},       // same line
		{20 * time.Millisecond, "a b\xe2\x9c", false}, // new line; an incomplete rune waits
		{20 * time.Millisecond, "\x93 c\r\n", false},  // completes it; the rune stays whole
		{time.Millisecond, big, false},                // a new line, cut in two when the next write comes
		{time.Millisecond, "tail", false},             // within the window, but the pending line is full
		{0, "", true},
		{time.Millisecond, "after\x1b[0m", false},
	}
	for _, s := range steps {
		advance(s.after)
		if s.event {
			must(t, w.Resize(90, 20))
			continue
		}
		must(t, w.Output([]byte(s.out)))
	}
	must(t, w.Close("normal"))
	lines := strings.Split(strings.TrimSuffix(e.cast(t, w.ID()), "\n"), "\n")[1:]
	want := []string{
		`[0.000000, "o", "$ ls\r\n"]`,
		`[0.025000, "o", "a b"]`,
		`[0.025000, "o", "✓ c\r\n"]`,
		`[0.046000, "o", "` + strings.Repeat("é", 8192) + `"]`,
		`[0.046000, "o", "` + strings.Repeat("é", 808) + `"]`,
		`[0.047000, "o", "tail"]`,
		`[0.047000, "r", "90x20"]`,
		`[0.048000, "o", "after\u001b[0m"]`,
	}
	var got []string
	for _, l := range lines {
		if !strings.Contains(l, `"m", "end`) && !strings.Contains(l, "gatehouse_event") {
			got = append(got, l)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		for i := range max(len(got), len(want)) {
			var g, w string
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("line %d:\n got %.120q\nwant %.120q", i, g, w)
			}
		}
	}
}
