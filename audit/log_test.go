package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testlog"
	"github.com/google/go-cmp/cmp"
)

// testLogger sends the Log's own messages to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return testlog.New(t)
}

var t0 = time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)

func openLog(t *testing.T, path string, opts Options) *Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 }
	}
	l, err := New(path, opts)
	if err != nil {
		t.Fatalf("New(%s) = %v", path, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustLog(t *testing.T, l *Log, ev Event) {
	t.Helper()
	if err := l.Log(t.Context(), ev); err != nil {
		t.Fatalf("Log(%+v) = %v", ev, err)
	}
}

// readEvents parses every line of the file at path.
func readEvents(t *testing.T, path string) ([]Event, [][]byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	var lines [][]byte
	for line := range bytes.Lines(data) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		evs = append(evs, ev)
		lines = append(lines, line)
	}
	return evs, lines
}

func TestLogWritesChainedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit", "audit.log")
	var stdout bytes.Buffer
	l := openLog(t, path, Options{Replica: "gate-1", Stdout: &stdout})
	local := time.Date(2031, 1, 1, 12, 0, 0, 0, time.FixedZone("X", 3600))
	in := []Event{
		{Type: "sso.login", Actor: "ann@example.com", Decision: Allow, Source: "192.0.2.1:5555"},
		{Type: "http.access", Actor: "bob@example.com", Resource: "route:grafana", Action: "GET /", Decision: Deny,
			Reason: "not in group sre", Time: local, Replica: "spoofed", Seq: 99, Prev: "spoofed"},
		{Type: "lock", Actor: "sec@example.com", Details: map[string]string{"user": "bob@example.com"}},
	}
	for _, ev := range in {
		mustLog(t, l, ev)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, lines := readEvents(t, path)
	want := []Event{
		{Time: t0, Type: "sso.login", Actor: "ann@example.com", Decision: Allow, Source: "192.0.2.1:5555", Replica: "gate-1", Seq: 1},
		{Time: local.UTC(), Type: "http.access", Actor: "bob@example.com", Resource: "route:grafana", Action: "GET /",
			Decision: Deny, Reason: "not in group sre", Replica: "gate-1", Seq: 2, Prev: lineHash(lines[0])},
		{Time: t0, Type: "lock", Actor: "sec@example.com", Details: map[string]string{"user": "bob@example.com"},
			Replica: "gate-1", Seq: 3, Prev: lineHash(lines[1])},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
	if got[1].Time.Location() != time.UTC {
		t.Errorf("time zone = %v, want UTC", got[1].Time.Location())
	}
	file, _ := os.ReadFile(path)
	if !bytes.Equal(stdout.Bytes(), file) {
		t.Errorf("stdout copy differs from the file:\n%s\nvs\n%s", stdout.Bytes(), file)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("mode of %s = %v, %v; want %v", p, fi.Mode().Perm(), err, want)
		}
	}
}

func TestLogThousandEventsVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path, Options{Replica: "r"})
	for i := range 1000 {
		mustLog(t, l, Event{Type: "http.access", Actor: fmt.Sprintf("u%d@example.com", i), Decision: Allow})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := VerifyFile(path); err != nil || n != 1000 {
		t.Errorf("VerifyFile = %d, %v; want 1000, nil", n, err)
	}
}

func TestLogConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path, Options{})
	const writers, each = 8, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := l.Log(context.Background(), Event{Type: "t", Actor: fmt.Sprintf("w%d-%d", w, i)}); err != nil {
					t.Errorf("Log = %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := VerifyFile(path); err != nil || n != writers*each {
		t.Fatalf("VerifyFile = %d, %v; want %d, nil", n, err, writers*each)
	}
	evs, _ := readEvents(t, path)
	seen := map[string]int{}
	for _, ev := range evs {
		seen[ev.Actor]++
	}
	for w := range writers {
		for i := range each {
			if k := fmt.Sprintf("w%d-%d", w, i); seen[k] != 1 {
				t.Errorf("event %s appears %d times, want 1", k, seen[k])
			}
		}
	}
}

func TestLogResumesChainAfterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	for round := range 3 {
		l := openLog(t, path, Options{})
		for i := range 5 {
			mustLog(t, l, Event{Type: "t", Action: fmt.Sprintf("%d.%d", round, i)})
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := VerifyFile(path); err != nil || n != 15 {
		t.Errorf("VerifyFile = %d, %v; want 15, nil", n, err)
	}
}

func TestLogRepairsTornFinalLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l := openLog(t, path, Options{})
	for range 3 {
		mustLog(t, l, Event{Type: "t"})
	}
	l.Close()
	torn := []byte(`{"time":"2031-05-06T07:08:09Z","type":"http.acc`)
	appendFile(t, path, torn)

	l = openLog(t, path, Options{})
	mustLog(t, l, Event{Type: "after"})
	l.Close()
	if n, err := VerifyFile(path); err != nil || n != 5 {
		t.Fatalf("VerifyFile after repair = %d, %v; want 5, nil", n, err)
	}
	evs, _ := readEvents(t, path)
	repair := evs[3]
	if repair.Type != RepairType || repair.Details["bytes"] != fmt.Sprint(len(torn)) {
		t.Fatalf("line 4 = %+v, want a repair event for %d bytes", repair, len(torn))
	}
	saved, err := os.ReadFile(filepath.Join(dir, repair.Details["sidecar"]))
	if err != nil || !bytes.Equal(saved, torn) {
		t.Errorf("sidecar %s = %q, %v; want the torn bytes", repair.Details["sidecar"], saved, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, repair.Details["sidecar"])); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("sidecar mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func appendFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

func TestLogRefusesDamagedEnd(t *testing.T) {
	tests := []struct {
		name   string
		damage func(lines [][]byte) [][]byte
	}{
		{"garbage last line", func(ls [][]byte) [][]byte { return append(ls, []byte("not json")) }},
		{"empty last line", func(ls [][]byte) [][]byte { return append(ls, []byte{}) }},
		{"last line edited", func(ls [][]byte) [][]byte {
			ls[len(ls)-1] = bytes.Replace(ls[len(ls)-1], []byte(`"seq":3`), []byte(`"seq":7`), 1)
			return ls
		}},
		{"line before last edited", func(ls [][]byte) [][]byte {
			ls[1] = bytes.Replace(ls[1], []byte(`"type":"t"`), []byte(`"type":"x"`), 1)
			return ls
		}},
		{"last line removed and seq kept", func(ls [][]byte) [][]byte { return [][]byte{ls[0], ls[2]} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			l := openLog(t, path, Options{})
			for range 3 {
				mustLog(t, l, Event{Type: "t"})
			}
			l.Close()
			_, lines := readEvents(t, path)
			damaged := bytes.Join(tc.damage(lines), []byte("\n"))
			damaged = append(damaged, '\n')
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			l2, err := New(path, Options{})
			if err == nil {
				l2.Close()
				t.Fatal("New on a damaged log succeeded, want an error")
			}
			if !strings.Contains(err.Error(), "damaged or edited") || !strings.Contains(err.Error(), "audit verify") {
				t.Errorf("New error = %q, want it to say the file was damaged and how to check it", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, damaged) {
				t.Error("New changed a damaged log it refused")
			}
		})
	}
}

func TestLogSecondWriterRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	openLog(t, path, Options{})
	l2, err := New(path, Options{})
	if err == nil {
		l2.Close()
		t.Fatal("second New on the same file succeeded")
	}
	if !strings.Contains(err.Error(), "in use by another gatehouse") {
		t.Errorf("second New error = %q", err)
	}
}

func TestLogRejects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Log(ctx, Event{Type: "t"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Log(canceled) = %v, want context.Canceled", err)
	}
	big := Event{Type: "big", Reason: strings.Repeat("x", maxLine)}
	if err := l.Log(t.Context(), big); err == nil {
		t.Error("Log(oversized event) = nil, want an error")
	}
	mustLog(t, l, Event{Type: "ok"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Log(t.Context(), Event{Type: "t"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Log after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if n, err := VerifyFile(path); err != nil || n != 1 {
		t.Errorf("VerifyFile = %d, %v; want only the accepted event", n, err)
	}
}

func TestLogWriteErrorIsSticky(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path, Options{})
	mustLog(t, l, Event{Type: "t"})
	l.f.Close() // make the next write fail
	if err := l.Log(t.Context(), Event{Type: "t"}); err == nil {
		t.Fatal("Log after a write failure = nil")
	}
	err := l.Log(t.Context(), Event{Type: "t"})
	if err == nil || !strings.Contains(err.Error(), "unavailable") {
		t.Errorf("next Log = %v, want the sticky unavailable error", err)
	}
}

// BenchmarkLog measures one writer: every event pays a write and an fsync.
func BenchmarkLog(b *testing.B) {
	l, err := New(filepath.Join(b.TempDir(), "audit.log"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ev := Event{Type: "http.access", Actor: "ann@example.com", Resource: "route:grafana", Action: "GET /d/abc", Decision: Allow, Source: "192.0.2.1:5555"}
	ctx := context.Background()
	for b.Loop() {
		if err := l.Log(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLogParallel measures many writers sharing fsyncs (group commit).
func BenchmarkLogParallel(b *testing.B) {
	l, err := New(filepath.Join(b.TempDir(), "audit.log"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ev := Event{Type: "http.access", Actor: "ann@example.com", Resource: "route:grafana", Action: "GET /d/abc", Decision: Allow, Source: "192.0.2.1:5555"}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := l.Log(ctx, ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
