package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"
)

// Webhook request headers. The signature is "sha256=" followed by the hex
// HMAC-SHA256 of the request body under the shared secret; the timestamp is
// the sender's Unix time in seconds. Every line in the body carries its
// replica and seq, so a receiver drops replays and duplicates by
// (replica, seq).
const (
	SignatureHeader = "X-Gatehouse-Signature"
	TimestampHeader = "X-Gatehouse-Timestamp"
)

// WebhookOptions configures delivery of audit lines to an HTTP receiver.
//
// Delivery is at least once and in order: the audit file itself is the
// spool. A background goroutine posts batches of lines (a JSON-lines body)
// that are already durable in the file, and after each 2xx answer it
// records, fsynced, how far the receiver has got (a cursor file in
// SpoolDir). While the receiver is down, events wait in the file; after a
// restart, delivery resumes from the cursor. Nothing is dropped, so a crash
// between a 2xx and the cursor update can repeat a batch.
type WebhookOptions struct {
	// URL receives POST requests. Required.
	URL string
	// Secret keys the HMAC signature. Required; never logged.
	Secret []byte
	// SpoolDir holds the delivery cursor. If empty, the audit log's
	// directory is used. Created 0700.
	SpoolDir string
	// Client sends the requests. If nil, a client with a 10s timeout that
	// does not follow redirects is used.
	Client *http.Client
	// MaxAttempts is how many consecutive failed posts make the receiver
	// count as down: the batch stays queued, an error is logged (again
	// every MaxAttempts failures) and retries continue at MaxBackoff. Zero
	// means 5.
	MaxAttempts int
	// Backoff is the delay after the first failed post; it doubles after
	// each failure up to MaxBackoff. Zero means 500ms; MaxBackoff zero
	// means 30s.
	Backoff, MaxBackoff time.Duration
	// CloseTimeout bounds how long Close waits for the receiver to catch
	// up; what is left is delivered after the next start. Zero means 5s.
	CloseTimeout time.Duration
	// MaxBatch is the most lines in one request. Zero means 100.
	MaxBatch int
}

// String describes the options without the secret.
func (o WebhookOptions) String() string {
	return fmt.Sprintf("webhook{url host %q, secret [redacted]}", urlHost(o.URL))
}

// LogValue keeps the secret out of structured logs.
func (o WebhookOptions) LogValue() slog.Value {
	return slog.GroupValue(slog.String("host", urlHost(o.URL)), slog.String("secret", "[redacted]"))
}

func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	return u.Host
}

// maxBody bounds the bytes one request carries (at least one whole line).
const maxBody = 2 * maxLine

// webhook delivers the audit file to the receiver.
type webhook struct {
	opts   WebhookOptions
	host   string
	logger *slog.Logger
	file   *os.File // read-only handle on the audit file
	cpath  string   // cursor file
	size   atomic.Int64
	wake   chan struct{} // buffered(1): new bytes are durable
	drain  chan struct{} // closed by close: deliver what is left, then stop
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	cur cursor // owned by run once it started
}

func newWebhook(logPath string, opts WebhookOptions, size int64, logger *slog.Logger) (*webhook, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("audit webhook: URL must be an absolute http or https URL")
	}
	if len(opts.Secret) == 0 {
		return nil, errors.New("audit webhook: a secret is required to sign requests")
	}
	setDefaults(&opts, logPath)
	if err := os.MkdirAll(opts.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("audit webhook: spool dir: %w", err)
	}
	f, err := os.Open(logPath)
	if err != nil {
		return nil, fmt.Errorf("audit webhook: %w", err)
	}
	w := &webhook{
		opts:   opts,
		host:   u.Host,
		logger: logger.With("webhook_host", u.Host),
		file:   f,
		cpath:  cursorPath(opts.SpoolDir, logPath),
		wake:   make(chan struct{}, 1),
		drain:  make(chan struct{}),
		done:   make(chan struct{}),
	}
	w.size.Store(size)
	w.cur = w.loadCursor(size)
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go w.run()
	return w, nil
}

func setDefaults(o *WebhookOptions, logPath string) {
	if o.SpoolDir == "" {
		o.SpoolDir = filepath.Dir(logPath)
	}
	if o.Client == nil {
		o.Client = &http.Client{
			Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return errors.New("audit webhook: refusing to follow a redirect")
			},
		}
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 5 * time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 100
	}
}

// committed tells the deliverer that the file now holds size durable bytes.
func (w *webhook) committed(size int64) {
	w.size.Store(size)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run delivers batches in order until close drains it or its deadline ends.
func (w *webhook) run() {
	defer close(w.done)
	failures := 0
	for {
		body, next, err := w.read()
		if err != nil {
			w.logger.Error("Failed to read the audit log for the webhook.", "error", err)
			failures++
			if !w.sleep(w.backoff(failures)) {
				return
			}
			continue
		}
		if len(body) == 0 {
			select {
			case <-w.wake:
				continue
			case <-w.drain:
				return
			case <-w.ctx.Done():
				return
			}
		}
		if err := w.post(body); err != nil {
			failures++
			if failures%w.opts.MaxAttempts == 0 {
				w.logger.Error("Audit webhook receiver is down; events stay queued in the audit log.",
					"attempts", failures, "queued_bytes", w.size.Load()-w.cur.Offset, "error", err)
			} else {
				w.logger.Warn("Audit webhook delivery failed; retrying.", "attempt", failures, "error", err)
			}
			if !w.sleep(w.backoff(failures)) {
				return
			}
			continue
		}
		failures = 0
		w.cur = next
		if err := w.saveCursor(); err != nil {
			w.logger.Error("Failed to save the audit webhook cursor; a restart may resend events.", "error", err)
		}
	}
}

// backoff is the delay after the n-th consecutive failure.
func (w *webhook) backoff(n int) time.Duration {
	d := w.opts.Backoff
	for i := 1; i < n && d < w.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, w.opts.MaxBackoff)
}

// sleep waits d; it reports false if the deliverer must stop.
func (w *webhook) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.ctx.Done():
		return false
	}
}

// read returns the next batch of whole, durable lines after the cursor and
// the cursor after them; an empty body means the receiver is caught up.
func (w *webhook) read() ([]byte, cursor, error) {
	avail := w.size.Load() - w.cur.Offset
	if avail <= 0 {
		return nil, w.cur, nil
	}
	buf := make([]byte, min(avail, maxBody))
	if _, err := w.file.ReadAt(buf, w.cur.Offset); err != nil && !errors.Is(err, io.EOF) {
		return nil, w.cur, err
	}
	end, lines := 0, 0
	for lines < w.opts.MaxBatch {
		i := bytes.IndexByte(buf[end:], '\n')
		if i < 0 {
			break
		}
		end += i + 1
		lines++
	}
	if end == 0 {
		return nil, w.cur, fmt.Errorf("no complete line at offset %d", w.cur.Offset)
	}
	body := buf[:end]
	last := body[:len(body)-1]
	if i := bytes.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	next := cursor{Offset: w.cur.Offset + int64(end), Hash: lineHash(last)}
	if ev, err := parseLine(last); err == nil {
		next.Seq = ev.Seq
	}
	return body, next, nil
}

// post sends one signed batch and succeeds only on a 2xx answer.
func (w *webhook) post(body []byte) error {
	mac := hmac.New(sha256.New, w.opts.Secret)
	mac.Write(body)
	req, err := http.NewRequestWithContext(w.ctx, http.MethodPost, w.opts.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("User-Agent", "gatehouse-audit")
	req.Header.Set(SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set(TimestampHeader, strconv.FormatInt(time.Now().Unix(), 10))
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

// close lets the deliverer catch up within CloseTimeout, then stops it.
func (w *webhook) close() error {
	close(w.drain)
	t := time.AfterFunc(w.opts.CloseTimeout, w.cancel)
	<-w.done
	t.Stop()
	w.cancel()
	if left := w.size.Load() - w.cur.Offset; left > 0 {
		w.logger.Warn("Audit webhook did not catch up before close; the rest is delivered after the next start.",
			"queued_bytes", left)
	}
	return w.file.Close()
}
