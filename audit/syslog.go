package audit

import (
	"bytes"
	"fmt"
	"log/slog"
	"log/syslog"
	"sync/atomic"
	"time"
)

// SyslogOptions configures a copy of the audit log to syslog.
//
// Every event goes to syslog, not only alerts: DESIGN.md promises audit
// events "exportable to syslog", and a SIEM that reads syslog wants the
// denials around an alert too. Alerts are told apart by severity (warning,
// every other event info), so a syslog rule such as "authpriv.warning"
// keeps alerts only. The facility is authpriv because events name people.
//
// Syslog is a best-effort copy: UDP may drop, and a syslog daemon keeps no
// cursor to resume from. So the sink never slows or blocks the audit log:
// lines wait in a bounded queue, what overflows it (or cannot be sent) is
// counted and logged, and nothing is resent. The durable, ordered,
// at-least-once copy is the webhook (and the file itself).
type SyslogOptions struct {
	// Network and Address name the syslog server ("udp", "tcp", "unix",
	// "unixgram" and a host:port or socket path). Both empty: the local
	// syslog daemon.
	Network, Address string
	// Tag is the syslog tag. If empty, log/syslog uses the program name.
	Tag string
	// Queue bounds the lines waiting to be sent. Zero means 4096.
	Queue int
	// CloseTimeout bounds how long Close waits for the queue to drain.
	// Zero means 2s.
	CloseTimeout time.Duration
}

// syslogSink sends durable audit lines to syslog from one goroutine.
type syslogSink struct {
	opts    SyslogOptions
	logger  *slog.Logger
	lines   chan []byte   // closed by close
	done    chan struct{} // closed when run returns
	dropped atomic.Int64  // lines lost since the last report
}

func newSyslogSink(opts SyslogOptions, logger *slog.Logger) *syslogSink {
	if opts.Queue <= 0 {
		opts.Queue = 4096
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 2 * time.Second
	}
	s := &syslogSink{opts: opts, logger: logger.With("syslog", opts.Network+" "+opts.Address),
		lines: make(chan []byte, opts.Queue), done: make(chan struct{})}
	go s.run()
	return s
}

// send queues each line of data (whole lines, as written to the file)
// without waiting.
func (s *syslogSink) send(data []byte) {
	for line := range bytes.Lines(data) {
		select {
		case s.lines <- bytes.Clone(bytes.TrimSuffix(line, []byte("\n"))):
		default:
			s.dropped.Add(1)
		}
	}
}

// redialEvery spaces the dials to a syslog server that is down; lines in
// between are counted as lost.
const redialEvery = time.Second

// run sends queued lines, dialling (again) when it has no connection.
// log/syslog itself redials once when a write fails. A failure is logged
// once, and the lines lost until the server is back are logged then.
func (s *syslogSink) run() {
	defer close(s.done)
	var (
		w        *syslog.Writer
		nextDial time.Time
		failing  bool
		lost     int64
	)
	defer func() {
		if w != nil {
			w.Close()
		}
	}()
	fail := func(err error) {
		lost++
		if !failing {
			failing = true
			s.logger.Error("Failed to copy audit lines to syslog; they stay in the audit log.", "error", err)
		}
	}
	for line := range s.lines {
		if w == nil {
			if time.Now().Before(nextDial) {
				fail(nil)
				continue
			}
			var err error
			w, err = syslog.Dial(s.opts.Network, s.opts.Address, syslog.LOG_AUTHPRIV|syslog.LOG_INFO, s.opts.Tag)
			if err != nil {
				nextDial = time.Now().Add(redialEvery)
				fail(err)
				continue
			}
		}
		write := w.Info
		if ev, err := parseLine(line); err == nil && ev.Type == AlertType {
			write = w.Warning
		}
		if err := write(string(line)); err != nil {
			w.Close()
			w = nil
			fail(err)
			continue
		}
		if n := s.dropped.Swap(0) + lost; n > 0 || failing {
			s.logger.Warn("Audit lines were not copied to syslog.", "lines", n)
			failing, lost = false, 0
		}
	}
	if n := s.dropped.Swap(0) + lost; n > 0 {
		s.logger.Warn("Audit lines were not copied to syslog.", "lines", n)
	}
}

// close lets the sink send what is queued, within CloseTimeout.
func (s *syslogSink) close() error {
	close(s.lines)
	select {
	case <-s.done:
		return nil
	case <-time.After(s.opts.CloseTimeout):
		return fmt.Errorf("audit: syslog did not take %d queued lines within %v", len(s.lines), s.opts.CloseTimeout)
	}
}
