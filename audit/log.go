package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// ErrClosed is returned by Log after Close.
var ErrClosed = errors.New("audit: log closed")

// Options configures a Log. The zero value writes the file only.
type Options struct {
	// Replica names this gatehouse instance in every event.
	Replica string
	// Stdout, if not nil, receives a copy of every line after it is durable
	// in the file. A failing Stdout is logged, never fatal.
	Stdout io.Writer
	// Webhook, if not nil, delivers every line to an HTTP receiver.
	Webhook *WebhookOptions
	// Syslog, if not nil, copies every line to syslog, best effort (see
	// SyslogOptions).
	Syslog *SyslogOptions
	// Alerter, if not nil, watches every logged event and the Log records
	// the alert events it raises.
	Alerter *Alerter
	// Logger receives the Log's own operational messages (sink failures,
	// repairs). If nil, they are discarded.
	Logger *slog.Logger
	// Now returns the current time, for events without one. If nil,
	// time.Now is used.
	Now func() time.Time
}

// Log is an append-only, hash-chained audit log in one JSON-lines file.
// It is safe for concurrent use. Log returns only after the event is written
// and fsynced; concurrent callers share one fsync (group commit), so the
// cost of durability is paid once per batch rather than once per event.
//
// A write or fsync error is sticky: the file may hold a partial line, so
// every later Log call fails too (callers deny what they could not record)
// until the process restarts, when New repairs the torn line.
type Log struct {
	path    string
	replica string
	now     func() time.Time
	logger  *slog.Logger
	stdout  io.Writer
	alerter *Alerter
	hook    *webhook    // nil when no webhook is configured
	syslog  *syslogSink // nil when no syslog is configured

	// Only the one goroutine that is flushing (see flushing) touches these.
	f    *os.File
	size int64 // bytes durable in f

	mu       sync.Mutex // guards the fields below
	idle     sync.Cond  // signalled (with mu) when flushing ends
	seq      uint64     // seq of the last line handed out
	prev     string     // hash of the last line handed out
	pending  []byte     // lines handed out but not yet written
	batch    *batch     // waiters for pending
	flushing bool       // a caller is writing batches; others wait on their batch
	closed   bool
	err      error // sticky write error
}

// batch is a group of lines written with one fsync.
type batch struct {
	done chan struct{} // closed when the batch is durable or failed
	err  error         // set before done is closed
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// New opens (creating if needed) the audit log at path, resumes the hash
// chain from its last line and starts the configured sinks. The file is
// created 0600 in a directory created 0700, and locked against a second
// writer.
//
// If the process previously died while writing, the file ends with a torn
// line (bytes after the last newline). New moves those bytes to a sidecar
// file next to the log (path + ".torn-<time>"), truncates the log to its
// last complete line and records an "audit.repair" event that names the
// sidecar and the bytes' SHA-256: nothing is silently dropped and the chain
// does not fork. If the last complete line is not a valid event, or does
// not chain to the line before it, the file was damaged or edited; New
// refuses to start rather than extend a broken chain.
func New(path string, opts Options) (*Log, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f, st, err := openChain(path, opts.Now())
	if err != nil {
		return nil, err
	}
	l := &Log{
		path:    path,
		replica: opts.Replica,
		now:     opts.Now,
		logger:  opts.Logger,
		stdout:  opts.Stdout,
		alerter: opts.Alerter,
		f:       f,
		size:    st.size,
		seq:     st.seq,
		prev:    st.prev,
		batch:   newBatch(),
	}
	l.idle.L = &l.mu
	if opts.Webhook != nil {
		l.hook, err = newWebhook(path, *opts.Webhook, st.size, opts.Logger)
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	if opts.Syslog != nil {
		l.syslog = newSyslogSink(*opts.Syslog, opts.Logger)
	}
	if st.repair != nil {
		l.logger.Warn("Audit log ended with a torn line; moved it aside.", "path", path,
			"sidecar", st.repair.Details["sidecar"], "bytes", st.repair.Details["bytes"])
		if err := l.Log(context.Background(), *st.repair); err != nil {
			l.Close()
			return nil, fmt.Errorf("audit log %s: record repair: %w", path, err)
		}
	}
	return l, nil
}

// Log appends ev to the chain. It sets ev's Seq, Prev and Replica, and its
// Time (UTC) if zero, and returns once the line is durable on disk. An event
// that Log accepted is written even if ctx ends while it waits.
func (l *Log) Log(ctx context.Context, ev Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ev.Time.IsZero() {
		ev.Time = l.now()
	}
	ev.Time = ev.Time.UTC()
	ev.Replica = l.replica

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.err != nil {
		l.mu.Unlock()
		return fmt.Errorf("audit log unavailable after a write error: %w", l.err)
	}
	ev.Seq, ev.Prev = l.seq+1, l.prev
	line, err := json.Marshal(ev)
	if err != nil {
		l.mu.Unlock()
		return fmt.Errorf("audit: encode event: %w", err)
	}
	if len(line) > maxLine {
		l.mu.Unlock()
		return fmt.Errorf("audit: event of type %q is %d bytes, more than %d", ev.Type, len(line), maxLine)
	}
	l.seq, l.prev = ev.Seq, lineHash(line)
	l.pending = append(append(l.pending, line...), '\n')
	b := l.batch
	lead := !l.flushing
	l.flushing = true
	l.mu.Unlock()

	if lead {
		l.flush()
	}
	<-b.done
	if b.err != nil {
		return b.err
	}
	if l.alerter != nil {
		for _, alert := range l.alerter.Observe(ev) {
			if err := l.Log(context.WithoutCancel(ctx), alert); err != nil {
				l.logger.Error("Failed to record audit alert.", "error", err, "reason", alert.Reason)
			}
		}
	}
	return nil
}

// flush writes pending batches until there are none; only one goroutine
// flushes at a time.
func (l *Log) flush() {
	for {
		l.mu.Lock()
		if len(l.pending) == 0 {
			l.flushing = false
			l.idle.Broadcast()
			l.mu.Unlock()
			return
		}
		data, b, stuck := l.pending, l.batch, l.err
		l.pending, l.batch = nil, newBatch()
		l.mu.Unlock()

		err := stuck
		if err == nil {
			err = l.write(data)
			if err != nil {
				l.mu.Lock()
				l.err = err
				l.mu.Unlock()
				l.logger.Error("Audit log write failed; refusing further events.", "path", l.path, "error", err)
			}
		} else {
			err = fmt.Errorf("audit log unavailable after a write error: %w", err)
		}
		b.err = err
		close(b.done)
	}
}

// write appends data to the file, fsyncs it and feeds the sinks.
func (l *Log) write(data []byte) error {
	if _, err := l.f.Write(data); err != nil {
		return fmt.Errorf("audit: write %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: fsync %s: %w", l.path, err)
	}
	l.size += int64(len(data))
	if l.hook != nil {
		l.hook.committed(l.size)
	}
	if l.syslog != nil {
		l.syslog.send(data)
	}
	if l.stdout != nil {
		if _, err := l.stdout.Write(data); err != nil {
			l.logger.Error("Failed to copy audit events to stdout.", "error", err)
		}
	}
	return nil
}

// Close waits for pending events, lets the webhook catch up within its
// CloseTimeout, and closes the file. Later calls return nil.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for l.flushing {
		l.idle.Wait()
	}
	l.mu.Unlock()
	var errs []error
	if l.hook != nil {
		errs = append(errs, l.hook.close())
	}
	if l.syslog != nil {
		errs = append(errs, l.syslog.close())
	}
	if err := l.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("audit: close %s: %w", l.path, err))
	}
	return errors.Join(errs...)
}

// lineHash is the chain link: hex SHA-256 of a line without its newline.
func lineHash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}
