package proxy

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Default WebSocket caps (FrontConfig.MaxWebSocketsPerSession and
// MaxWebSockets).
const (
	DefaultMaxWebSocketsPerSession = 16
	DefaultMaxWebSockets           = 10000
)

// wsGuard caps and tracks the WebSockets the hop tunnels: per person and in
// total, and it closes them all on Shutdown (http.Server.Shutdown does not
// know hijacked connections). The front puts it into the context of an
// upgrade whose Origin it accepted; the hop tunnels only with it.
type wsGuard struct {
	maxPerKey, maxTotal int
	onChange            func(open int) // metrics; may be nil

	mu     sync.Mutex
	perKey map[string]int
	total  int
	conns  map[*wsConn]struct{}
	closed bool
}

func newWSGuard(maxPerKey, maxTotal int, onChange func(int)) *wsGuard {
	return &wsGuard{maxPerKey: maxPerKey, maxTotal: maxTotal, onChange: onChange,
		perKey: map[string]int{}, conns: map[*wsConn]struct{}{}}
}

type wsGuardKey struct{}

func withWSGuard(ctx context.Context, g *wsGuard) context.Context {
	return context.WithValue(ctx, wsGuardKey{}, g)
}

func wsGuardFrom(ctx context.Context) *wsGuard {
	g, _ := ctx.Value(wsGuardKey{}).(*wsGuard)
	return g
}

// acquire takes one slot for key. It returns a release func (call once),
// or 0 and the status to refuse with: 429 over the person's cap, 503 over
// the total or while shutting down.
func (g *wsGuard) acquire(key string) (release func(), refuse int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed || g.total >= g.maxTotal:
		return nil, http.StatusServiceUnavailable
	case g.perKey[key] >= g.maxPerKey:
		return nil, http.StatusTooManyRequests
	}
	g.perKey[key]++
	g.total++
	g.changed()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.perKey[key]--; g.perKey[key] <= 0 {
				delete(g.perKey, key)
			}
			g.total--
			g.changed()
		})
	}, 0
}

func (g *wsGuard) changed() {
	if g.onChange != nil {
		g.onChange(g.total)
	}
}

// track registers a hijacked connection; it reports false (and the caller
// must close c) when the guard is already shut.
func (g *wsGuard) track(c *wsConn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.conns[c] = struct{}{}
	return true
}

func (g *wsGuard) untrack(c *wsConn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// closeMatching closes the live WebSockets for which match(key, host) is
// true and returns how many.
func (g *wsGuard) closeMatching(match func(key, host string) bool) int {
	g.mu.Lock()
	var hit []*wsConn
	for c := range g.conns {
		if match(c.key, c.host) {
			hit = append(hit, c)
		}
	}
	g.mu.Unlock()
	for _, c := range hit {
		_ = c.Close()
	}
	return len(hit)
}

// closeAll refuses new WebSockets and closes the live ones.
func (g *wsGuard) closeAll() {
	g.mu.Lock()
	g.closed = true
	conns := make([]*wsConn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// wsConn is a tunnelled client connection: closing it releases its slot.
type wsConn struct {
	net.Conn
	g         *wsGuard
	key, host string // the person (wsKey) and the route host
	release   func()
	once      sync.Once
}

func (c *wsConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.g.untrack(c)
		c.release()
	})
	return err
}

// wsWriter hands the hop's Hijack a tracked connection.
type wsWriter struct {
	http.ResponseWriter
	g         *wsGuard
	key, host string
	release   func()
	hijacked  bool
}

func (w *wsWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.hijacked = true
	// The tunnel lives as long as both ends want it: no deadline left over
	// from the request (the front's write deadline) may cut it.
	_ = c.SetDeadline(time.Time{})
	wc := &wsConn{Conn: c, g: w.g, key: w.key, host: w.host, release: w.release}
	if !w.g.track(wc) {
		_ = wc.Close()
		return nil, nil, net.ErrClosed
	}
	return wc, brw, nil
}

func (w *wsWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wsKey is the key WebSockets are counted under: the person, because the
// admitted subject carries no session ID.
func wsKey(email string) string { return strings.ToLower(email) }

// originAllowed reports whether a browser's Origin may open a WebSocket on
// the route at host: the route's own origin as the browser writes it
// (https://HOST, with :PORT when public_url names a port other than 443),
// or one the route lists in websocket_origins. No Origin is refused: every
// browser sends one, and a client without one needs no WebSocket from a
// browser gate.
func (rt *frontRoutes) originAllowed(host, origin string) bool {
	if origin == "" {
		return false
	}
	origin = strings.ToLower(origin)
	if origin == "https://"+host+rt.redirectPort {
		return true
	}
	for _, o := range rt.wsOrigins[host] {
		if o == origin {
			return true
		}
	}
	return false
}

// CloseWebSockets ends the live WebSockets of the person with this email
// (a lock or a sign-out: a tunnel opened before it must not outlive it)
// and returns how many it closed.
func (f *Front) CloseWebSockets(email string) int {
	key := wsKey(email)
	return f.ws.closeMatching(func(k, _ string) bool { return k == key })
}
