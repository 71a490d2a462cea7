package sshgw

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	glssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
)

// Time limits before a connection is authenticated.
const (
	// handshakeTimeout bounds key exchange and the first authentication
	// steps of a connection.
	handshakeTimeout = 2 * time.Minute
	// approvalGrace is added to an approval's lifetime for the rest of the
	// handshake once it is approved.
	approvalGrace = 30 * time.Second
)

// connKeyType is the type of connKey.
type connKeyType struct{}

// connKey stores the *conn in a gliderlabs Context.
var connKey connKeyType

// conn is one client SSH connection: the outer connection from the client,
// or the inner connection of ProxyJump carried by one of its channels.
type conn struct {
	s      *Server
	id     string   // random session ID (audit, certificates, recordings)
	remote net.Addr // the client's address
	nc     net.Conn // the transport this SSH connection runs on
	log    *slog.Logger
	// jump is the target of an inner ProxyJump connection; nil for an
	// outer connection.
	jump *target
	// ctx ends when the connection ends (client gone, closed, server
	// shutdown); it bounds approval waits and the upstream dial.
	ctx    context.Context
	cancel context.CancelFunc

	// auth is set once by the final authentication step, before any
	// channel is handled. It is read by the lock watcher concurrently.
	auth atomic.Pointer[authResult]

	// activity is the Unix nanosecond time of the last channel data.
	activity atomic.Int64

	mu        sync.Mutex  // guards the fields below
	authTimer *time.Timer // closes the connection if it does not authenticate in time
	idleTimer *time.Timer
	lifeTimer *time.Timer
	closed    bool
	reverse   map[string]bool // channel types the target may open toward the client
	tried     []string        // authentication methods the client tried (not "none")
	denied    bool            // a refusal was audited
}

// authResult is what authentication established.
type authResult struct {
	who    authz.Subject
	fp     string  // the client key's SHA256 fingerprint
	login  string  // "" in list mode
	target *target // nil: list mode (no target; ProxyJump carrier)
	up     *gossh.Client
	method string // "publickey" or "keyboard-interactive"
}

// newConn registers a new connection on nc. parent is the outer
// connection's context for an inner ProxyJump connection.
func (s *Server) newConn(parent context.Context, nc net.Conn, remote net.Addr, jump *target) *conn {
	c := &conn{s: s, id: newSessionID(), remote: remote, nc: nc, jump: jump}
	c.ctx, c.cancel = context.WithCancel(parent)
	c.log = s.log.With("conn", c.id, "remote", remote.String())
	c.activity.Store(s.now().UnixNano())
	c.authTimer = time.AfterFunc(handshakeTimeout, func() { c.close("authentication timed out") })
	// Whatever ends the connection's context closes the transport.
	context.AfterFunc(c.ctx, func() { c.close("") })
	return c
}

// newSessionID returns a random 96-bit session ID in hex.
func newSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// connCallback is gliderlabs' ConnCallback: it creates the conn for a new
// TCP connection and wraps the net.Conn to notice the client leaving.
func (s *Server) connCallback(ctx glssh.Context, nc net.Conn) net.Conn {
	if s.ctx.Err() != nil {
		return nil // shutting down
	}
	c := s.newConn(s.ctx, nc, nc.RemoteAddr(), nil)
	ctx.SetValue(connKey, c)
	// gliderlabs cancels its context when the connection ends.
	context.AfterFunc(ctx, c.cancel)
	return &watchConn{Conn: newCoalescer(nc), c: c}
}

// email returns the authenticated person's email, or "".
func (c *conn) email() string {
	if a := c.auth.Load(); a != nil {
		return a.who.Email
	}
	return ""
}

// extendAuth gives a pending approval time to complete.
func (c *conn) extendAuth(until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.authTimer != nil {
		c.authTimer.Reset(time.Until(until) + approvalGrace)
	}
}

// authenticated records a and starts the connection's idle and lifetime
// limits.
func (c *conn) authenticated(a *authResult) {
	c.auth.Store(a)
	idle, life := defaultIdleTimeout, defaultMaxSession
	if a.target != nil {
		idle, life = a.target.idle, a.target.maxLife
	}
	c.mu.Lock()
	if c.authTimer != nil {
		c.authTimer.Stop()
		c.authTimer = nil
	}
	if !c.closed {
		c.lifeTimer = time.AfterFunc(life, func() { c.close("maximum session length reached") })
		c.idleTimer = time.AfterFunc(idle, func() { c.checkIdle(idle) })
	}
	c.mu.Unlock()
	c.s.track(c, true)
}

// touch records channel activity for the idle timeout.
func (c *conn) touch() { c.activity.Store(time.Now().UnixNano()) }

// checkIdle closes the connection if no channel data moved for idle, and
// otherwise re-arms its timer.
func (c *conn) checkIdle(idle time.Duration) {
	last := time.Unix(0, c.activity.Load())
	left := idle - time.Since(last)
	if left <= 0 {
		c.close("idle timeout")
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.idleTimer.Reset(left)
	}
}

// close ends the connection and its upstream. It is idempotent.
func (c *conn) close(reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	for _, t := range []*time.Timer{c.authTimer, c.idleTimer, c.lifeTimer} {
		if t != nil {
			t.Stop()
		}
	}
	unaudited := c.auth.Load() == nil && len(c.tried) > 0 && !c.denied
	tried := strings.Join(c.tried, ",")
	c.mu.Unlock()
	if unaudited {
		// E.g. an unapproved key in BatchMode, or a client that gave up
		// during the approval: a failed login all the same.
		ev := c.authEvent("")
		ev.Decision, ev.Details = audit.Deny, map[string]string{"methods": tried}
		ev.Reason = "authentication not completed"
		if reason != "" {
			ev.Reason += ": " + reason
		}
		c.s.logAudit(context.WithoutCancel(c.ctx), ev)
	}
	c.cancel()
	if reason != "" {
		c.log.Info("Closing SSH connection.", "reason", reason)
	}
	_ = c.nc.Close()
	if a := c.auth.Load(); a != nil {
		if a.up != nil {
			_ = a.up.Close()
		}
		c.s.track(c, false)
	}
}

// authLog is the AuthLogCallback: it notes which methods the client tried.
func (c *conn) authLog(_ gossh.ConnMetadata, method string, _ error) {
	if method == "none" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.tried, method) && len(c.tried) < 8 {
		c.tried = append(c.tried, sanitize(method))
	}
}

// markDenied records that a refusal of this connection was audited.
func (c *conn) markDenied() {
	c.mu.Lock()
	c.denied = true
	c.mu.Unlock()
}

// watchConn wraps the client's transport. A read error (the client left)
// cancels the connection's context, which ends a pending approval wait.
// Deadline calls from gliderlabs are ignored: the conn's own timers bound
// the connection instead.
type watchConn struct {
	net.Conn
	c *conn
}

func (w *watchConn) Read(b []byte) (int, error) {
	n, err := w.Conn.Read(b)
	if err != nil {
		w.c.cancel()
	}
	return n, err
}

func (w *watchConn) SetDeadline(time.Time) error      { return nil }
func (w *watchConn) SetReadDeadline(time.Time) error  { return nil }
func (w *watchConn) SetWriteDeadline(time.Time) error { return nil }
