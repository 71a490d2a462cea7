package harness

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// lineLog is an io.Writer for a child process's output: it passes each
// complete line to t.Log and keeps everything for assertions. After close
// it stops calling t.Log (the test may be over) but still keeps the text.
type lineLog struct {
	t      testing.TB
	prefix string

	mu      sync.Mutex // guards the fields below
	all     bytes.Buffer
	partial []byte
	closed  bool
}

func newLineLog(t testing.TB, prefix string) *lineLog {
	return &lineLog{t: t, prefix: prefix}
}

// Write implements io.Writer; it never fails.
func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		if !l.closed {
			l.t.Logf("%s: %s", l.prefix, l.partial[:i])
		}
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// close logs an unterminated last line and stops further t.Log calls.
func (l *lineLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed && len(l.partial) > 0 {
		l.t.Logf("%s: %s", l.prefix, l.partial)
	}
	l.partial = nil
	l.closed = true
}

// String returns everything written so far.
func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// tail returns the last n lines written so far.
func (l *lineLog) tail(n int) string {
	lines := strings.Split(strings.TrimRight(l.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LineLog is the same writer for tests outside the harness that start a
// tool of their own: each output line goes to t.Log, and String returns all
// of it.
type LineLog struct{ *lineLog }

// NewLineLog returns a LineLog whose lines are prefixed with prefix.
func NewLineLog(t testing.TB, prefix string) LineLog { return LineLog{newLineLog(t, prefix)} }

// Close logs an unterminated last line and stops further t.Log calls.
func (l LineLog) Close() { l.close() }
