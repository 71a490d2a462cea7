package proxy

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Deadlines of the stages of an HTTPS request after its header (the
// header has ReadHeaderTimeout, idle keep-alive IdleTimeout).
const (
	// A request body gets frontBodyGrace to start, and one more second
	// for every frontBodyMinRate bytes that arrive (Apache
	// mod_reqtimeout's body=20,MinRate=500 model): a slow but steady
	// upload of any size goes through, a client that trickles a few
	// bytes to hold the connection is cut off.
	frontBodyGrace   = 20 * time.Second
	frontBodyMinRate = 500 // bytes per second
	// frontWriteIdle bounds each write to a client that does not read.
	// It is set before every write rather than once per response, so a
	// long stream (server-sent events, a large download) lives as long
	// as the client keeps reading.
	frontWriteIdle = time.Minute
)

// bodyDeadline wraps a request body and keeps the connection's read
// deadline at grace + received/minRate from the first read.
type bodyDeadline struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	read  int64
	eof   atomic.Bool
	// done is set when the handler has returned: the ResponseController
	// may not be used after that, and a late read (a transport still
	// sending the body) must not touch the next request's deadline.
	done atomic.Bool
}

// withBodyDeadline puts r's body under a read deadline. It returns nil
// when r has no body.
func withBodyDeadline(w http.ResponseWriter, r *http.Request, now time.Time, grace time.Duration) *bodyDeadline {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	b := &bodyDeadline{ReadCloser: r.Body, rc: http.NewResponseController(w), start: now, grace: grace}
	b.extend()
	r.Body = b
	return b
}

func (b *bodyDeadline) extend() {
	if b.done.Load() {
		return
	}
	d := b.grace + time.Duration(b.read)*time.Second/frontBodyMinRate
	_ = b.rc.SetReadDeadline(b.start.Add(d))
}

func (b *bodyDeadline) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.read += int64(n)
		b.extend()
	}
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

// unread reports whether the body has not been read to its end.
func (b *bodyDeadline) unread() bool { return b != nil && !b.eof.Load() }
