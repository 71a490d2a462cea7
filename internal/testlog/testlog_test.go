package testlog

import (
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what is logged.
type recorder struct {
	testing.TB
	lines    []string
	cleanups []func()
}

func (r *recorder) Helper()          {}
func (r *recorder) Log(args ...any)  { r.lines = append(r.lines, args[0].(string)) }
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) end() {
	for _, f := range r.cleanups {
		f()
	}
}
func (r *recorder) joined() string { return strings.Join(r.lines, "\n") }

func TestNewWritesToTheTestLogUntilItEnds(t *testing.T) {
	r := &recorder{TB: t}
	l := New(r)
	l.Debug("debug shows", "k", "v")
	l.Info("  info shows  ")
	if got := r.joined(); !strings.Contains(got, "level=DEBUG msg=\"debug shows\" k=v") || !strings.Contains(got, "msg=\"  info shows  \"") {
		t.Errorf("test log = %q", got)
	}
	for _, line := range r.lines {
		if strings.HasSuffix(line, "\n") {
			t.Errorf("line %q keeps its newline", line)
		}
	}
	r.end()
	l.Info("after the test")
	if strings.Contains(r.joined(), "after the test") {
		t.Errorf("a record logged after the test ended reached t.Log")
	}
}
