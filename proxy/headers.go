package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"time"
)

// Header values Gatehouse sets. HSTS goes on every HTTPS response, including
// those of upstream applications; the others only on Gatehouse's own pages.
const (
	hstsValue = "max-age=63072000; includeSubDomains"
	cspValue  = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

// SecurityHeaders sets the headers that every page Gatehouse renders itself
// carries: a restrictive Content-Security-Policy, X-Content-Type-Options,
// Referrer-Policy and X-Frame-Options. They are set before h runs, so h may
// still replace one (for example a page that needs a nonce in its CSP).
func SecurityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header())
		h.ServeHTTP(w, r)
	})
}

func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", cspValue)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// frontError writes a short plain-text error page from Gatehouse itself.
// msg is shown to the client, so it must never carry internal detail.
func frontError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	setSecurityHeaders(h)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// placeholderPortal answers on the public host until the portal exists.
func placeholderPortal() http.Handler {
	const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gatehouse</title></head>
<body><h1>Gatehouse</h1><p>Gatehouse is running; sign-in arrives in a later release.</p></body></html>
`
	return SecurityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			frontError(w, http.StatusNotFound, "not found")
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, page)
	}))
}

// hstsWriter sets Strict-Transport-Security on the final response header
// (overriding whatever a handler or upstream set) and remembers the status
// for metrics. Informational 1xx headers pass through untouched.
//
// It also keeps the connection's write deadline frontWriteIdle ahead of
// every write, and on HTTP/1.1 closes the connection after a response
// sent while the request body is still unread (a gate redirecting to
// sign-in, a refusal): Go's server would otherwise drain up to 256 KiB
// of body from a client that may be sending it a byte at a time.
type hstsWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	body     *bodyDeadline // nil: no request body
	http1    bool
	code     int // final status; 0 until written
	hijacked bool
	extended time.Time // when extendWrite last moved the deadline
}

func newHSTSWriter(w http.ResponseWriter, r *http.Request) *hstsWriter {
	return &hstsWriter{ResponseWriter: w, rc: http.NewResponseController(w), http1: r.ProtoMajor == 1}
}

func (w *hstsWriter) WriteHeader(code int) {
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
		w.Header().Set("Strict-Transport-Security", hstsValue)
		if w.http1 && code != http.StatusSwitchingProtocols && w.body.unread() {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *hstsWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.extendWrite()
	return w.ResponseWriter.Write(b)
}

// extendWriteEvery is how often extendWrite really moves the deadline: a
// deadline moved less than this ago is left alone, so it stays at least
// frontWriteIdle-extendWriteEvery ahead. A response of many writes, and
// the flush after the handler, then cost one update instead of one per
// write; on HTTP/2 every update is a message to the connection's serve
// goroutine and a timer.
const extendWriteEvery = time.Second

// extendWrite moves the write deadline frontWriteIdle ahead.
func (w *hstsWriter) extendWrite() {
	now := time.Now()
	if !w.extended.IsZero() && now.Sub(w.extended) < extendWriteEvery {
		return
	}
	w.extended = now
	_ = w.rc.SetWriteDeadline(now.Add(frontWriteIdle))
}

// FlushError flushes after making sure the final header carries HSTS.
func (w *hstsWriter) FlushError() error {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.extendWrite()
	return w.rc.Flush()
}

// Hijack hands the connection over (WebSockets); the upgrade response was
// already written by the caller, if at all.
func (w *hstsWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := w.rc.Hijack()
	if err == nil {
		w.hijacked = true
		if w.code == 0 {
			w.code = http.StatusSwitchingProtocols
		}
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *hstsWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
