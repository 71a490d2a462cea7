package sshgw

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"maps"
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
	"github.com/gatehouse-dev/gatehouse/config"
)

// Time limits around authentication. The grace time before it is
// PreAuth.Grace.
const (
	// approvalGrace is added to an approval's lifetime for the rest of the
	// handshake once it is approved.
	approvalGrace = 30 * time.Second
	// noticeWait bounds how long closing waits to tell the client why.
	noticeWait = 250 * time.Millisecond
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
	// release uncounts the connection from the pre-auth caps; nil for an
	// inner ProxyJump connection, which is not counted there.
	release func()
	parked  bool // release also frees an approval-wait slot (parkPre)

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
	reverse   map[string]bool        // channel types the target may open toward the client
	notices   map[io.Writer]struct{} // session stderr streams, to say why the gateway ends the connection
	tried     []string               // authentication methods the client tried (not "none")
	denied    bool                   // a refusal was audited
	reason    string                 // why the gateway ended the connection ("" if it did not)
	by        string                 // who ended it (a reviewer who terminated it), or ""

	fwd fwdRec // the recording of the connection's forwards
}

// authResult is what authentication established.
type authResult struct {
	who    authz.Subject
	fp     string  // the client key's SHA256 fingerprint
	login  string  // "" in list mode
	target *target // nil: list mode (no target; ProxyJump carrier)
	up     *targetConn
	method string // "publickey" or "keyboard-interactive"
	// approval is the ID of the browser approval that let this
	// connection in; "" when a key binding did.
	approval string
	// pol is the policy the decision was made with; a reload re-checks
	// connections that were admitted under an older one.
	pol *policy
}

// newConn registers a new connection on nc. parent is the outer
// connection's context for an inner ProxyJump connection. release uncounts
// it from the pre-auth caps (nil: not counted).
func (s *Server) newConn(parent context.Context, nc net.Conn, remote net.Addr, jump *target, release func()) *conn {
	c := &conn{s: s, id: newSessionID(), remote: remote, nc: nc, jump: jump, release: release}
	c.ctx, c.cancel = context.WithCancel(parent)
	c.log = s.log.With("conn", c.id, "remote", remote.String())
	c.activity.Store(s.now().UnixNano())
	// Under mu: the timer's close reads authTimer, also when it fires at once.
	c.mu.Lock()
	c.authTimer = time.AfterFunc(s.pre.lim.Grace, c.graceExpired)
	c.mu.Unlock()
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
	release, refused := s.pre.admit(nc.RemoteAddr().String())
	if refused != "" {
		// Closed before the SSH handshake, as OpenSSH's MaxStartups does.
		s.log.DebugContext(s.ctx, "Refused an SSH connection before authentication.", "remote", nc.RemoteAddr().String(), "cap", refused)
		return nil
	}
	c := s.newConn(s.ctx, nc, nc.RemoteAddr(), nil, release)
	ctx.SetValue(connKey, c)
	// gliderlabs cancels its context when the connection ends.
	context.AfterFunc(ctx, c.cancel)
	return &watchConn{Conn: s.transport(nc), c: c}
}

// email returns the authenticated person's email, or "".
func (c *conn) email() string {
	if a := c.auth.Load(); a != nil {
		return a.who.Email
	}
	return ""
}

// releasePre uncounts the connection from the pre-auth caps, once.
func (c *conn) releasePre() {
	c.mu.Lock()
	release := c.release
	c.release = nil
	c.mu.Unlock()
	if release != nil {
		release()
	}
}

// parkPre moves the connection, now waiting for a person to approve it in
// a browser, out of the total pre-auth cap into the smaller pool of
// approval waits (see preauth.park): a wait may last minutes, and a few
// sources must not fill the total cap with waits nobody will approve. It
// reports false when that pool is full.
func (c *conn) parkPre() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.release == nil || c.parked {
		return true // an inner connection, or already parked
	}
	unpark, ok := c.s.pre.park(c.remote.String())
	if !ok {
		return false
	}
	release := c.release
	c.release = func() { release(); unpark() }
	c.parked = true
	return true
}

// graceExpired closes a connection that did not authenticate in time.
func (c *conn) graceExpired() {
	c.mu.Lock()
	counted := c.release != nil
	c.mu.Unlock()
	if counted {
		c.s.pre.graceExpired()
	}
	c.close("authentication timed out")
}

// extendAuth gives a pending approval time to complete.
func (c *conn) extendAuth(until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.authTimer != nil {
		c.authTimer.Reset(until.Sub(c.s.now()) + approvalGrace)
	}
}

// authenticated records a and starts the connection's idle and lifetime
// limits.
func (c *conn) authenticated(a *authResult) {
	c.releasePre()
	c.auth.Store(a)
	// A connection without a target (list mode, ProxyJump carrier) gets
	// the defaults a target gets; each inner connection has its target's.
	idle, life := config.DefaultIdleTimeout, config.DefaultMaxSession
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
	// A reload that swept the live connections while this one was being
	// decided did not see it: check it against the policy now in force.
	if p := c.s.policy(); a.pol != p && !c.readmit(p) {
		c.close(reasonReload)
	}
}

// touch records channel activity for the idle timeout.
func (c *conn) touch() { c.activity.Store(c.s.now().UnixNano()) }

// checkIdle closes the connection if no channel data moved for idle, and
// otherwise re-arms its timer.
func (c *conn) checkIdle(idle time.Duration) {
	last := time.Unix(0, c.activity.Load())
	left := idle - c.s.now().Sub(last)
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

// close ends the connection and its upstream. It is idempotent. A reason
// means the gateway ends the connection: an authenticated one is then told
// why on its open sessions and audited as ended.
func (c *conn) close(reason string) { c.closeBy(reason, "") }

// closeBy is close naming who ended the connection (by), for its
// recordings.
func (c *conn) closeBy(reason, by string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.reason, c.by = reason, by
	for _, t := range []*time.Timer{c.authTimer, c.idleTimer, c.lifeTimer} {
		if t != nil {
			t.Stop()
		}
	}
	unaudited := c.auth.Load() == nil && len(c.tried) > 0 && !c.denied
	tried := strings.Join(c.tried, ",")
	notices := slices.Collect(maps.Keys(c.notices))
	c.notices = nil
	c.mu.Unlock()
	c.releasePre()
	a := c.auth.Load()
	if a != nil && reason != "" {
		c.endEvent(context.WithoutCancel(c.ctx), a, reason)
		tell(notices, reason)
	}
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
		c.log.InfoContext(c.ctx, "Closing SSH connection.", "reason", reason)
	}
	_ = c.nc.Close()
	if a != nil {
		if a.up != nil {
			_ = a.up.Close()
		}
		c.s.track(c, false)
	}
	c.endForwards()
}

// endReason returns why the connection's sessions end, for their
// recordings: the gateway's reason and who gave it, or "normal".
func (c *conn) endReason() (reason, by string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason == "" {
		return "normal", ""
	}
	return c.reason, c.by
}

// tell writes why the connection ends to each of ws (the stderr of its
// sessions), waiting at most noticeWait: a client that reads nothing must
// not hold the close.
func tell(ws []io.Writer, reason string) {
	sayAll(ws, []byte("\r\ngatehouse: connection closed: "+reason+"\r\n"))
}

// sayAll writes line to each of ws, waiting at most noticeWait.
func sayAll(ws []io.Writer, line []byte) {
	if len(ws) == 0 {
		return
	}
	done := make(chan struct{}, len(ws))
	for _, w := range ws {
		go func() { _, _ = w.Write(line); done <- struct{}{} }()
	}
	timer := time.NewTimer(noticeWait)
	defer timer.Stop()
	for range ws {
		select {
		case <-done:
		case <-timer.C:
			return
		}
	}
}

// addNotice registers w (a session's stderr) to be told why the gateway
// ends the connection; the returned function unregisters it.
func (c *conn) addNotice(w io.Writer) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.notices == nil {
		c.notices = map[io.Writer]struct{}{}
	}
	c.notices[w] = struct{}{}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.notices, w)
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
