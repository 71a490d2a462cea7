package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/assertion"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/config"
)

// Upstream defaults.
const (
	// DefaultMaxRequestBody is the largest request body forwarded to an
	// upstream; a larger one gets 413. Header sizes are bounded by the
	// front door's http.Server (MaxHeaderBytes).
	DefaultMaxRequestBody = 32 << 20
	// upstreamIdleConns is the idle keep-alive connections kept per
	// upstream. It must be at least the expected concurrency, or the
	// proxy opens a new connection for most requests under load: with
	// 512, bench/http's 1,000 active connections closed and reopened
	// upstream connections all the time.
	upstreamIdleConns = 1024
	// upstreamIdleTimeout closes an upstream connection idle this long.
	upstreamIdleTimeout = 90 * time.Second
	// upstreamMaxHeader bounds an upstream's response header.
	upstreamMaxHeader = 1 << 20
	// upstreamBufSize is each upstream connection's read and write buffer.
	upstreamBufSize = 16 << 10
)

// StatusClientClosed is the status counted for a request whose client
// went away before the upstream answered (nginx's 499); no client sees it.
const StatusClientClosed = 499

// Identity headers set on every proxied request. Client-sent copies (in any
// case, with "-" or "_") are removed first.
const (
	HeaderUser      = "X-Gatehouse-User"
	HeaderEmail     = "X-Gatehouse-Email"
	HeaderGroups    = "X-Gatehouse-Groups"
	HeaderAssertion = "X-Gatehouse-Jwt-Assertion"
)

// Signer signs the identity assertion for one route (*assertion.Signer):
// a token for X-Gatehouse-Jwt-Assertion and the X-Gatehouse-Groups value.
type Signer interface {
	Assertion(who authz.Subject, aud string) (token, groups string, err error)
}

// Upstream forwards the requests of one route to its upstream with
// Gatehouse's identity headers. It never follows upstream redirects; it
// passes WebSocket upgrades and streaming responses through. It is safe for
// concurrent use.
type Upstream struct {
	name    string
	target  *url.URL
	signer  Signer
	logger  *slog.Logger
	maxBody int64
	// strip and ident are the route's strip_headers (normalised) and
	// identity_headers.
	strip []string
	ident []identityHeader
	// rp is the template proxy; Serve copies it and sets Rewrite per request.
	rp httputil.ReverseProxy
}

// NewUpstream returns the proxy for route r. signer is required: no request
// is forwarded without an assertion. If logger is nil, logs are discarded.
func NewUpstream(r config.Route, signer Signer, logger *slog.Logger) (*Upstream, error) {
	if signer == nil {
		return nil, fmt.Errorf("route %s: assertion signer is required", r.Name)
	}
	target, err := url.Parse(r.Upstream)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" ||
		target.User != nil || target.RawQuery != "" || target.Fragment != "" {
		return nil, fmt.Errorf("route %s: upstream must be http(s)://host[:port][/path]", r.Name)
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// Config resolves an absent timeout to its default. Zero here means
	// the route skipped that step, and a zero ResponseHeaderTimeout would
	// wait for an upstream forever: refuse instead.
	timeout := r.Timeout.D()
	if timeout <= 0 {
		return nil, fmt.Errorf("route %s: timeout is required", r.Name)
	}
	u := &Upstream{
		name:    r.Name,
		target:  target,
		signer:  signer,
		logger:  logger.With("route", r.Name),
		maxBody: DefaultMaxRequestBody,
		ident:   newIdentityHeaders(r.IdentityHeaders),
	}
	for _, h := range r.StripHeaders {
		u.strip = append(u.strip, normHeaderName(h))
	}
	u.rp = httputil.ReverseProxy{
		Transport:      newUpstreamTransport(target, timeout),
		BufferPool:     newBufferPool(),
		ErrorHandler:   u.fail,
		ModifyResponse: u.modifyResponse,
		ErrorLog:       slog.NewLogLogger(u.logger.Handler(), slog.LevelWarn),
		// Zero: responses of unknown length (streams) and event streams
		// are flushed after every write; others when the buffer fills.
		FlushInterval: 0,
	}
	return u, nil
}

// newUpstreamTransport returns the transport dedicated to one upstream. It
// speaks HTTP/1.1 only (WebSocket upgrades need it), ignores proxy
// environment variables, never decompresses, and keeps enough idle
// connections for the expected concurrency. For a plain-HTTP upstream,
// bodiless GET and HEAD requests go through keepAliveClient (see there
// why, and why it keeps people's answers apart); everything else through
// http.Transport.
func newUpstreamTransport(target *url.URL, timeout time.Duration) http.RoundTripper {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		ForceAttemptHTTP2:      false,
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{},
		DisableCompression:     true,
		MaxIdleConns:           upstreamIdleConns,
		MaxIdleConnsPerHost:    upstreamIdleConns,
		IdleConnTimeout:        upstreamIdleTimeout,
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: upstreamMaxHeader,
		WriteBufferSize:        upstreamBufSize,
		ReadBufferSize:         upstreamBufSize,
	}
	if target.Scheme != "http" {
		return tr
	}
	return newKeepAliveClient(tr, target, d, timeout)
}

// Close retires the upstream when a reload replaced its route: its idle
// connections close now. Requests in flight finish; keepAliveClient closes
// their connections when their answers end, http.Transport (bodies,
// upgrades, TLS upstreams) keeps them idle until upstreamIdleTimeout, since
// it has no retired state. WebSockets, hijacked from the pool, are not
// touched: the front ends those of a changed route itself.
func (u *Upstream) Close() error {
	switch t := u.rp.Transport.(type) {
	case *keepAliveClient:
		t.retire()
	case interface{ CloseIdleConnections() }:
		t.CloseIdleConnections()
	}
	return nil
}

// ServeHTTP forwards r as the identity the gate admitted and put into its
// context (assertion.WithSubject); without one it refuses the request.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	who, _ := assertion.SubjectFrom(r.Context())
	u.Serve(w, r, who)
}

// Serve forwards r to the upstream as who. The caller has already
// authenticated the session and asked authz; Serve only refuses an empty
// identity and a body over the limit.
func (u *Upstream) Serve(w http.ResponseWriter, r *http.Request, who authz.Subject) {
	if who.Email == "" {
		u.logger.ErrorContext(r.Context(), "Refusing to proxy without an identity.")
		plainError(w, http.StatusForbidden, "Forbidden.")
		return
	}
	if u.maxBody > 0 && r.ContentLength > u.maxBody {
		plainError(w, http.StatusRequestEntityTooLarge, "Request body too large.")
		return
	}
	token, groups, err := u.signer.Assertion(who, u.name)
	if err != nil {
		u.logger.ErrorContext(r.Context(), "Failed to sign identity assertion.", "error", err)
		plainError(w, http.StatusInternalServerError, "Internal error.")
		return
	}
	switch {
	case isWebSocketUpgrade(r):
		ww, release, ok := u.admitWebSocket(w, r, who)
		if !ok {
			return
		}
		defer func() {
			if !ww.hijacked {
				release()
			}
		}()
		w = ww
	case needsUpgradeStrip(r.Header):
		// Any other upgrade (h2c above all) would tunnel past the gate:
		// the upstream gets a plain request instead.
		r = withoutUpgrade(r)
	}
	rp := u.rp
	rp.Rewrite = func(pr *httputil.ProxyRequest) {
		stripClientHeaders(pr.Out.Header, u.strip)
		pr.SetURL(u.target)
		pr.SetXForwarded()
		h := pr.Out.Header
		vals := [...]string{who.Email, who.Email, groups, token}
		h[HeaderUser] = vals[0:1:1]
		h[HeaderEmail] = vals[1:2:2]
		h[HeaderGroups] = vals[2:3:3]
		h[HeaderAssertion] = vals[3:4:4]
		setIdentityHeaders(h, u.ident, who, groups)
		// Connection tokens and HTTP2-Settings were stripped before
		// ReverseProxy saw the request; HTTP2-Settings is not among its
		// hop-by-hop headers, so drop it here too.
		h.Del("Http2-Settings")
		stripGatehouseCookies(h)
		if pr.Out.Body != nil && u.maxBody > 0 {
			pr.Out.Body = http.MaxBytesReader(w, pr.Out.Body, u.maxBody)
		}
	}
	rp.ServeHTTP(w, r)
}

// admitWebSocket takes a WebSocket slot for who from the front's guard.
// Without the guard (the front checked the Origin) or over a cap it
// answers the request itself and reports false.
func (u *Upstream) admitWebSocket(w http.ResponseWriter, r *http.Request, who authz.Subject) (*wsWriter, func(), bool) {
	g := wsGuardFrom(r.Context())
	if g == nil {
		u.logger.WarnContext(r.Context(), "Refusing a WebSocket the front did not admit.")
		plainError(w, http.StatusForbidden, "WebSocket not allowed.")
		return nil, nil, false
	}
	key := wsKey(who.Email)
	release, code := g.acquire(key)
	if code != 0 {
		u.logger.WarnContext(r.Context(), "Refusing a WebSocket over the cap.", "status", code)
		plainError(w, code, "Too many WebSockets.")
		return nil, nil, false
	}
	return &wsWriter{ResponseWriter: w, g: g, key: key, host: canonicalHost(r.Host), release: release}, release, true
}

// errBadStatus is an upstream status ReverseProxy cannot pass on: net/http
// parses "000" as 0, and WriteHeader panics below 100.
var errBadStatus = errors.New("upstream sent a status code below 100")

// modifyResponse refuses a status code below 100 and a protocol switch
// other than the WebSocket the client asked for, and drops any attempt by
// the upstream to set a Gatehouse cookie on the route's host.
func (u *Upstream) modifyResponse(res *http.Response) error {
	if res.StatusCode < 100 {
		return errBadStatus
	}
	if res.StatusCode == http.StatusSwitchingProtocols && !switchAllowed(res) {
		return errUnrequestedSwitch
	}
	if dropped := stripGatehouseSetCookies(res.Header); dropped > 0 {
		u.logger.Warn("Dropped Set-Cookie for a Gatehouse cookie from the upstream.", "count", dropped)
	}
	return nil
}

// fail answers a request the upstream could not serve. The client sees
// only the status and a short text; the error is logged.
func (u *Upstream) fail(w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &tooLarge):
		plainError(w, http.StatusRequestEntityTooLarge, "Request body too large.")
		return
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer. The status is
		// only what the metrics count: nginx's 499, so that a client
		// hanging up is never counted as an upstream failure (a 502).
		u.logger.DebugContext(r.Context(), "Client left before the upstream answered.", "error", err)
		w.WriteHeader(StatusClientClosed)
		return
	case errors.As(err, &netErr) && netErr.Timeout():
		u.logger.WarnContext(r.Context(), "Upstream timed out.", "method", r.Method, "path", r.URL.Path, "error", err)
		plainError(w, http.StatusGatewayTimeout, "The application did not answer in time.")
	default:
		u.logger.WarnContext(r.Context(), "Upstream request failed.", "method", r.Method, "path", r.URL.Path, "error", err)
		plainError(w, http.StatusBadGateway, "The application is not reachable.")
	}
}

// plainError writes a short plain-text error that reveals nothing about
// the upstream.
func plainError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	body := strconv.Itoa(code) + " " + http.StatusText(code) + ": " + msg + "\n"
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}
