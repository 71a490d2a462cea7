package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// keepAliveClient sends the bodiless GET and HEAD requests of one plain
// HTTP upstream over pooled keep-alive connections from the calling
// goroutine, and hands every other request (bodies, upgrades, a host it
// was not made for) to the http.Transport in fallback.
//
// Why not http.Transport for all: it serves each request with two
// goroutines per connection (a write loop and a read loop) and a hand-off
// to each, which cost about a fifth of a proxied request's CPU in
// bench/http. Here a request is written and its response read by the
// handler's own goroutine; the wire format is still net/http's
// (Request.Write, http.ReadResponse).
//
// Why it cannot mix up two people's responses: a connection goes back to
// the pool only when its response's body was read to its framed end (or
// it had none), no byte beyond it is buffered, and no cancellation touched
// it; on the way out of the pool, a connection that holds unread data or
// was closed by the upstream is dropped (the check http.Transport's idle
// read loop makes). Anything else closes the connection. Each of those
// rules has a test in upstream_client_test.go that fails without it;
// TestKeepAliveClientOwnerUnderChaos and TestHopOwnerUnderLoad check
// every answer's owner under many callers at once.
type keepAliveClient struct {
	fallback    *http.Transport
	host        string // the upstream URL's host; requests for others fall back
	addr        string // host:port dialled
	dialer      *net.Dialer
	headerWait  time.Duration // the route's timeout for the response header
	maxHeader   int64
	idleTimeout time.Duration
	maxIdle     int

	// writeBufs lends write buffers for the moment a request is written.
	writeBufs sync.Pool

	mu      sync.Mutex
	idle    []*upstreamConn // oldest first: put appends, conn takes the last
	reaping bool            // a reap is scheduled
	retired bool            // retire ran: connections close instead of pooling
}

// upstreamConn is one pooled connection. Its read buffer holds nothing
// while it is idle; the write buffer is borrowed only while writing.
type upstreamConn struct {
	nc     net.Conn
	lr     headerLimit
	br     *bufio.Reader
	idleAt time.Time
}

// headerLimit fails reads once more than n bytes were read while n is in
// force: http.ReadResponse has no bound of its own on a response header.
type headerLimit struct {
	r io.Reader
	n int64
}

var errHeaderTooLarge = errors.New("upstream response header too large")

func (l *headerLimit) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// noHeaderLimit is the limit outside a header read.
const noHeaderLimit = 1<<63 - 1

// max1xx bounds the informational answers (103 Early Hints) read before
// the final one. http.Transport has no bound when a trace is installed, as
// ReverseProxy does; five hints are more than any application sends, and
// an upstream sending them forever would hold the request until its
// timeout.
const max1xx = 5

// longAgo is a deadline that fails pending reads and writes at once.
var longAgo = time.Unix(1, 0)

// newKeepAliveClient returns the client for the upstream at target, with
// the same limits as fallback (upstream.go's constants).
func newKeepAliveClient(fallback *http.Transport, target *url.URL, dialer *net.Dialer, headerWait time.Duration) *keepAliveClient {
	port := target.Port()
	if port == "" {
		port = "80"
	}
	k := &keepAliveClient{
		fallback:    fallback,
		host:        target.Host,
		addr:        net.JoinHostPort(target.Hostname(), port),
		dialer:      dialer,
		headerWait:  headerWait,
		maxHeader:   upstreamMaxHeader,
		idleTimeout: upstreamIdleTimeout,
		maxIdle:     upstreamIdleConns,
	}
	k.writeBufs.New = func() any { return bufio.NewWriterSize(nil, upstreamBufSize) }
	return k
}

// eligible reports whether req is one this client sends itself.
func (k *keepAliveClient) eligible(req *http.Request) bool {
	return (req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		req.URL.Scheme == "http" && req.URL.Host == k.host &&
		(req.Body == nil || req.Body == http.NoBody) && req.ContentLength == 0 &&
		req.Header.Get("Upgrade") == "" && !req.Close && validHeader(req.Header)
}

// validHeader reports whether every field of h may be written as it is.
// Request.Write does not check names (http.Transport does): a request
// with a field it would refuse goes to the fallback, which refuses it.
func validHeader(h http.Header) bool {
	for k, vs := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	return true
}

// RoundTrip implements http.RoundTripper.
func (k *keepAliveClient) RoundTrip(req *http.Request) (*http.Response, error) {
	if !k.eligible(req) {
		return k.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	for {
		c, reused, err := k.conn(ctx)
		if err != nil {
			return nil, err
		}
		res, err := k.exchange(ctx, c, req)
		if err == nil {
			return res, nil
		}
		// A pooled connection the upstream closed while we took it fails
		// before any answer. GET and HEAD are safe to send again; a fresh
		// connection's failure is the answer.
		if !reused || ctx.Err() != nil || !retryable(err) {
			return nil, err
		}
	}
}

// noAnswer is a failure before the first byte of an answer: the write
// failed, or the connection was closed or reset before it answered. On a
// pooled connection that is how an upstream closing it at that moment
// shows, and the request may be sent again.
type noAnswer struct{ err error }

func (e noAnswer) Error() string { return e.err.Error() }
func (e noAnswer) Unwrap() error { return e.err }

func retryable(err error) bool {
	var na noAnswer
	var ne net.Error
	return errors.As(err, &na) && !(errors.As(err, &ne) && ne.Timeout())
}

// exchange writes req on c and reads its answer. On error c is closed.
func (k *keepAliveClient) exchange(ctx context.Context, c *upstreamConn, req *http.Request) (*http.Response, error) {
	// The header must arrive within the route's timeout. The deadline is
	// set before the cancellation hook below, which may override it.
	if err := c.nc.SetReadDeadline(time.Now().Add(k.headerWait)); err != nil {
		_ = c.nc.Close()
		return nil, err
	}
	// A cancelled request fails its pending read or write at once; the
	// connection is then never reused (release sees stop fail).
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(longAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = c.nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	bw := k.writeBufs.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	k.writeBufs.Put(bw)
	if err != nil {
		return fail(noAnswer{err})
	}
	c.lr.n = k.maxHeader
	// http.ReadResponse reports EOF before the first byte and EOF in the
	// middle alike; the first byte is awaited here to tell them apart.
	if _, err := c.br.Peek(1); err != nil {
		return fail(noAnswer{err}) // closes c: its limit no longer matters
	}
	res, err := k.readFinal(c, req)
	c.lr.n = noHeaderLimit
	if err != nil {
		return fail(err)
	}
	// The body may take as long as it takes. A cancellation that came
	// before this line had its deadline overwritten: fail instead.
	if err := c.nc.SetReadDeadline(time.Time{}); err != nil || ctx.Err() != nil {
		return fail(err)
	}
	b := &upstreamBody{rc: res.Body, c: c, k: k, ctx: ctx, stop: stop, reuse: !res.Close}
	if res.Body == http.NoBody {
		// Nothing follows the header on the wire (HEAD, 204, 304,
		// Content-Length: 0): the connection is free now.
		b.finish(b.reuse)
		return res, nil
	}
	res.Body = b
	return res, nil
}

// readFinal reads the answer to req, passing informational (1xx)
// answers to the request's trace as http.Transport does.
func (k *keepAliveClient) readFinal(c *upstreamConn, req *http.Request) (*http.Response, error) {
	trace := httptrace.ContextClientTrace(req.Context())
	for range max1xx + 1 {
		res, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, err
		}
		code := res.StatusCode
		if code < 100 || code > 199 {
			return res, nil
		}
		if code == http.StatusSwitchingProtocols {
			// Never asked for (upgrades use the fallback).
			return nil, errUnrequestedSwitch
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(res.Header)); err != nil {
				return nil, err
			}
		}
		// Each answer's header has the whole budget, as in http.Transport.
		c.lr.n = k.maxHeader
	}
	return nil, fmt.Errorf("upstream sent more than %d informational responses", max1xx)
}

// conn returns a pooled connection that is still open and holds no
// unread byte, or a new one; reused says which.
func (k *keepAliveClient) conn(ctx context.Context) (c *upstreamConn, reused bool, err error) {
	now := time.Now()
	for {
		k.mu.Lock()
		n := len(k.idle)
		if n == 0 {
			k.mu.Unlock()
			break
		}
		c = k.idle[n-1]
		k.idle[n-1] = nil
		k.idle = k.idle[:n-1]
		k.mu.Unlock()
		if now.Sub(c.idleAt) < k.idleTimeout && quiet(c.nc) {
			return c, true, nil
		}
		_ = c.nc.Close()
	}
	nc, err := k.dialer.DialContext(ctx, "tcp", k.addr)
	if err != nil {
		return nil, false, err
	}
	c = &upstreamConn{nc: nc}
	c.lr = headerLimit{r: nc, n: noHeaderLimit}
	c.br = bufio.NewReaderSize(&c.lr, upstreamBufSize)
	return c, false, nil
}

// quiet reports whether an idle connection has nothing to read and is
// not closed: a byte waiting would be an answer nobody asked for, and
// would be taken as the next request's. One non-blocking peek, no wait.
func quiet(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var b [1]byte
	idle := false
	err = rc.Read(func(fd uintptr) bool {
		// EOF (0 bytes, no error) or a byte: not quiet.
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		idle = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && idle
}

// put returns c to the pool, or closes it when the pool is full.
func (k *keepAliveClient) put(c *upstreamConn) {
	c.idleAt = time.Now()
	k.mu.Lock()
	if k.retired || len(k.idle) >= k.maxIdle {
		k.mu.Unlock()
		_ = c.nc.Close()
		return
	}
	k.idle = append(k.idle, c)
	if !k.reaping {
		k.reaping = true
		time.AfterFunc(k.idleTimeout, k.reap)
	}
	k.mu.Unlock()
}

// reap closes the connections idle for the idle timeout, as
// http.Transport's idle timers do: an upstream closes its side of an idle
// connection, and ours would otherwise wait in CLOSE_WAIT for the next
// request (or forever, for a route that gets none). It runs again while
// the pool holds any, at most once per idle timeout.
func (k *keepAliveClient) reap() {
	now := time.Now()
	k.mu.Lock()
	n := 0
	for n < len(k.idle) && now.Sub(k.idle[n].idleAt) >= k.idleTimeout {
		n++
	}
	old := make([]*upstreamConn, n)
	copy(old, k.idle[:n])
	k.idle = append(k.idle[:0], k.idle[n:]...)
	if len(k.idle) > 0 {
		time.AfterFunc(k.idle[0].idleAt.Add(k.idleTimeout).Sub(now), k.reap)
	} else {
		k.reaping = false
	}
	k.mu.Unlock()
	for _, c := range old {
		_ = c.nc.Close()
	}
}

// CloseIdleConnections closes the pooled connections and the fallback's.
func (k *keepAliveClient) CloseIdleConnections() {
	k.closeIdle(false)
}

// retire closes the pooled connections and the fallback's, and makes every
// connection in use close when its answer ends instead of returning to the
// pool: the client serves a route that a reload replaced, and no request
// will take a pooled connection again. Requests still arriving (one that
// picked the old route just before the swap) are served, on connections
// that close after them.
func (k *keepAliveClient) retire() {
	k.closeIdle(true)
}

func (k *keepAliveClient) closeIdle(retire bool) {
	k.mu.Lock()
	k.retired = k.retired || retire
	idle := k.idle
	k.idle = nil
	k.mu.Unlock()
	for _, c := range idle {
		_ = c.nc.Close()
	}
	k.fallback.CloseIdleConnections()
}

// upstreamBody is an answer's body. Its connection is released once,
// by whichever comes first: the end of the body (pooled when clean) or
// Close (closed).
type upstreamBody struct {
	rc     io.ReadCloser
	c      *upstreamConn
	k      *keepAliveClient
	ctx    context.Context // the request's
	stop   func() bool
	reuse  bool
	done   atomic.Bool
	closed atomic.Bool // Close ran
}

// errReadAfterClose is http.Transport's answer to a read after Close: not
// EOF, which would pass a cut-short body off as whole.
var errReadAfterClose = errors.New("read on closed response body")

func (b *upstreamBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errReadAfterClose
	}
	if b.done.Load() {
		// Never read past the end: the connection may be carrying
		// someone else's answer by now.
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.finish(b.reuse)
	case err != nil && b.ctx.Err() != nil:
		// The cancellation hook's past deadline failed the read: the
		// client went away, which is what to report (ReverseProxy logs
		// any other error as an upstream failure), as Transport does.
		err = b.ctx.Err()
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	b.closed.Store(true)
	b.finish(false)
	return nil
}

// finish releases the connection: to the pool if reuse and it is clean,
// else closed. Only the first call acts.
func (b *upstreamBody) finish(reuse bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	c := b.c
	// stop fails when the request was cancelled: the deadline it set may
	// land on the connection at any moment, so it must not be reused.
	if b.stop() && reuse && c.br.Buffered() == 0 {
		b.k.put(c)
		return
	}
	_ = c.nc.Close()
}
