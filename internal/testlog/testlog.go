// Package testlog sends what code under test logs to the test's own log
// (t.Log), so that a failing test shows it next to the failure and a
// passing one stays quiet. Every package's tests use it instead of keeping
// their own copy.
package testlog

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// New returns a logger that writes each record, at debug level and above,
// to t.Log (see Writer).
func New(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Writer returns a writer that sends each write, trimmed of surrounding
// space, to t.Log, for loggers built elsewhere (a command's own handler,
// http.Server.ErrorLog). Writes after the test has ended are dropped: a
// server goroutine that logs late would otherwise make the testing package
// panic ("Log in goroutine after Test... has completed").
func Writer(t testing.TB) io.Writer {
	w := &writer{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

type writer struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Helper()
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}
