package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// fastTransport carries the common case, a bodiless GET or HEAD to a plain
// HTTP upstream, over pooled HTTP/1.1 keep-alive connections in the
// caller's goroutine. http.Transport hands every request to two goroutines
// per connection (a writer and a reader) and back over channels; on a busy
// proxy those hand-offs cost more CPU than Gatehouse's own work. Parsing
// and serialising stay the standard library's (Request.Write and
// ReadResponse, the code http.Transport uses), and every other request
// (bodies, upgrades, https upstreams, odd headers) goes to next unchanged.
//
// Failure handling follows http.Transport: a reused connection that fails
// before any response byte arrives (the upstream closed it while idle) is
// retried once on a fresh one, which is safe because only GET and HEAD
// come here; the response header wait is bounded by respTimeout and the
// response header size by maxHeader; a cancelled request closes its
// connection; a connection returns to the pool only after its response
// body was read to the end and neither side asked to close it.
type fastTransport struct {
	host        string // upstream host as in its URL (port optional)
	addr        string // upstream host:port to dial
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	next        http.RoundTripper
	respTimeout time.Duration
	idleTimeout time.Duration
	maxIdle     int
	maxHeader   int64

	mu     sync.Mutex  // guards idle and reaper
	idle   []*fastConn // LIFO: the most recently used last
	reaper *time.Timer // closes connections idle too long; nil when idle is empty
}

// fastConn is one pooled upstream connection.
type fastConn struct {
	nc   net.Conn
	lr   limitedConn
	br   *bufio.Reader
	bw   *bufio.Writer
	used time.Time // when it went idle
}

// limitedConn counts the bytes read and, while limit >= 0, refuses to read
// more than limit (response headers).
type limitedConn struct {
	nc    net.Conn
	read  int64
	limit int64
}

var errHeaderTooLarge = errors.New("upstream response header too large")

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.limit >= 0 {
		if l.read >= l.limit {
			return 0, errHeaderTooLarge
		}
		if rest := l.limit - l.read; int64(len(p)) > rest {
			p = p[:rest]
		}
	}
	n, err := l.nc.Read(p)
	l.read += int64(n)
	return n, err
}

// eligible reports whether req may take the fast path.
func (t *fastTransport) eligible(req *http.Request) bool {
	if (req.Method != http.MethodGet && req.Method != http.MethodHead) || req.URL.Scheme != "http" || req.URL.Host != t.host ||
		(req.Body != nil && req.Body != http.NoBody) || req.ContentLength != 0 || req.Close || len(req.Trailer) > 0 ||
		len(req.TransferEncoding) > 0 {
		return false
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	if _, ok := req.Header["Expect"]; ok {
		return false
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	return httpguts.ValidHostHeader(req.Host)
}

// RoundTrip implements http.RoundTripper.
func (t *fastTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.eligible(req) {
		return t.next.RoundTrip(req)
	}
	for attempt := 0; ; attempt++ {
		c, reused, err := t.get(req.Context())
		if err != nil {
			return nil, err
		}
		res, err := t.exchange(c, req, reused && attempt == 0)
		if err == nil {
			return res, nil
		}
		c.nc.Close()
		if reused && attempt == 0 && (c.lr.read == 0 || err == errIdleTimeout) && req.Context().Err() == nil {
			continue // the upstream closed the idle connection: try a fresh one
		}
		return nil, err
	}
}

// errIdleTimeout is a 408 found on a reused connection: the upstream's
// notice that it closed the connection while idle, not an answer.
var errIdleTimeout = errors.New("upstream timed out the idle connection")

// exchange writes req on c and reads the response header. On a reused
// connection that may be retried, a 408 is errIdleTimeout.
func (t *fastTransport) exchange(c *fastConn, req *http.Request, retryable bool) (*http.Response, error) {
	ctx := req.Context()
	// A cancelled request (the client left) unblocks any read or write at
	// once; the connection is then closed, never reused.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	c.lr.read = 0
	if err := req.Write(c.bw); err != nil {
		stop()
		return nil, fmt.Errorf("write request to upstream: %w", err)
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return nil, fmt.Errorf("write request to upstream: %w", err)
	}
	if err := c.nc.SetReadDeadline(time.Now().Add(t.respTimeout)); err != nil {
		stop()
		return nil, err
	}
	c.lr.limit = t.maxHeader
	res, err := http.ReadResponse(c.br, req)
	// Informational responses (103 Early Hints) are skipped; a 101 to a
	// request that asked for no upgrade is an error.
	for err == nil && res.StatusCode >= 100 && res.StatusCode < 200 && res.StatusCode != http.StatusSwitchingProtocols {
		res, err = http.ReadResponse(c.br, req)
	}
	c.lr.limit = -1
	switch {
	case err != nil:
	case res.StatusCode == http.StatusSwitchingProtocols:
		err = errors.New("upstream switched protocols without an upgrade request")
	case res.StatusCode == http.StatusRequestTimeout && retryable:
		err = errIdleTimeout
	}
	if err == nil {
		err = c.nc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		stop()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	keep := !res.Close
	if res.Body == http.NoBody {
		t.release(c, stop, keep)
		return res, nil
	}
	res.Body = &fastBody{t: t, c: c, body: res.Body, stop: stop, keep: keep}
	return res, nil
}

// fastBody returns its connection to the pool when read to the end. It is
// read and closed by one goroutine (ReverseProxy's), never concurrently.
type fastBody struct {
	t    *fastTransport
	c    *fastConn
	body io.ReadCloser
	stop func() bool
	keep bool
	done bool
}

func (b *fastBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.done = true
		b.t.release(b.c, b.stop, b.keep && err == io.EOF)
	}
	return n, err
}

func (b *fastBody) Close() error {
	if !b.done {
		// Not read to the end: the rest is unread on the wire.
		b.done = true
		b.t.release(b.c, b.stop, false)
	}
	return nil
}

// release ends a request's use of c: back to the pool when keep and the
// request was not cancelled meanwhile, closed otherwise.
func (t *fastTransport) release(c *fastConn, stop func() bool, keep bool) {
	// Bytes after the response are not an answer to anything: never let
	// them pose as the response to the next request.
	if !stop() || !keep || c.br.Buffered() > 0 {
		c.nc.Close()
		return
	}
	now := time.Now()
	c.used = now
	t.mu.Lock()
	t.dropStaleLocked(now)
	if len(t.idle) >= t.maxIdle {
		t.mu.Unlock()
		c.nc.Close()
		return
	}
	t.idle = append(t.idle, c)
	if t.reaper == nil {
		t.reaper = time.AfterFunc(t.idleTimeout, t.reap)
	}
	t.mu.Unlock()
}

// reap closes the connections idle longer than idleTimeout, so that an
// upstream that gets no more traffic (or was dropped by a config reload)
// holds no connections after a while.
func (t *fastTransport) reap() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.dropStaleLocked(now)
	if len(t.idle) == 0 {
		t.reaper = nil
		return
	}
	t.reaper.Reset(t.idle[0].used.Add(t.idleTimeout).Sub(now) + time.Millisecond)
}

// get returns an idle connection (reused) or dials a new one.
func (t *fastTransport) get(ctx context.Context) (c *fastConn, reused bool, err error) {
	now := time.Now()
	t.mu.Lock()
	t.dropStaleLocked(now)
	if n := len(t.idle); n > 0 {
		c = t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
	}
	t.mu.Unlock()
	if c != nil {
		return c, true, nil
	}
	nc, err := t.dial(ctx, "tcp", t.addr)
	if err != nil {
		return nil, false, err
	}
	c = &fastConn{nc: nc, lr: limitedConn{nc: nc, limit: -1}}
	c.br = bufio.NewReaderSize(&c.lr, 16<<10)
	c.bw = bufio.NewWriterSize(nc, 4<<10)
	return c, false, nil
}

// dropStaleLocked closes connections idle longer than idleTimeout (the
// oldest are first). t.mu must be held.
func (t *fastTransport) dropStaleLocked(now time.Time) {
	n := 0
	for n < len(t.idle) && now.Sub(t.idle[n].used) > t.idleTimeout {
		t.idle[n].nc.Close()
		t.idle[n] = nil
		n++
	}
	if n > 0 {
		t.idle = append(t.idle[:0], t.idle[n:]...)
	}
}

// CloseIdleConnections closes every idle connection.
func (t *fastTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	if t.reaper != nil {
		t.reaper.Stop()
		t.reaper = nil
	}
	t.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
	if ci, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
