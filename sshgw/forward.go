package sshgw

import (
	"net"
	"strconv"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
)

// directTCPIP is the payload of a direct-tcpip channel open (RFC 4254 7.2).
type directTCPIP struct {
	DestAddr string
	DestPort uint32
	OrigAddr string
	OrigPort uint32
}

func parseDirect(nc gossh.NewChannel) (directTCPIP, string, bool) {
	var p directTCPIP
	if err := gossh.Unmarshal(nc.ExtraData(), &p); err != nil || p.DestPort == 0 || p.DestPort > 65535 {
		return p, "", false
	}
	return p, net.JoinHostPort(p.DestAddr, strconv.Itoa(int(p.DestPort))), true
}

// forwardChannel handles a local forward on a target connection: allowed
// only to a host:port the target lists, opened by the target.
func (c *conn) forwardChannel(nc gossh.NewChannel, a *authResult) {
	_, dest, ok := parseDirect(nc)
	if !ok {
		_ = nc.Reject(gossh.ConnectionFailed, "malformed forward request")
		return
	}
	details := map[string]string{"destination": sanitize(dest)}
	if !a.target.forwards[dest] {
		c.channelEvent(a, audit.Deny, "forward", "destination not listed in the target's forwards", details)
		_ = nc.Reject(gossh.Prohibited, "forward not allowed")
		return
	}
	up, upReqs, err := a.up.OpenChannel("direct-tcpip", nc.ExtraData())
	if err != nil {
		c.channelEvent(a, audit.Deny, "forward", "target could not open the forward: "+err.Error(), details)
		_ = nc.Reject(gossh.ConnectionFailed, "target could not connect")
		return
	}
	// Recorded before any byte moves; refused if it cannot be.
	done, err := c.forwardOpened(a, details["destination"])
	if err != nil {
		_ = up.Close()
		_ = nc.Reject(gossh.ConnectionFailed, "gatehouse: recording failed")
		return
	}
	down, downReqs, err := nc.Accept()
	if err != nil {
		_ = up.Close()
		done(0, 0)
		return
	}
	c.channelEvent(a, audit.Allow, "forward", "", details)
	toDest, fromDest := c.splice(down, downReqs, up, upReqs)
	done(toDest, fromDest)
}

// jumpTarget finds the target a ProxyJump channel asks for: by name (any
// port: the gateway terminates the connection itself) or by its exact
// configured address.
func (p *policy) jumpTarget(d directTCPIP, dest string) *target {
	if t := p.targets[d.DestAddr]; t != nil {
		return t
	}
	for _, t := range p.order {
		if t.cfg.Address == dest {
			return t
		}
	}
	return nil
}

// mayUse reports whether who may use t with at least one login, MFA
// freshness aside (the inner connection checks it).
func (p *policy) mayUse(who authz.Subject, t *target, now time.Time) bool {
	for _, l := range t.cfg.Logins {
		d := authz.DecideTarget(who, t.cfg, l, p.defaultMFA, now)
		if d.Allow || d.NeedMFA {
			return true
		}
	}
	return false
}

// jumpChannel handles ProxyJump: a direct-tcpip channel to a target on a
// connection without a target. The gateway runs a second SSH server
// handshake inside the channel, presenting a host certificate for the
// target, and handles that inner connection like a direct one.
func (c *conn) jumpChannel(nc gossh.NewChannel, a *authResult) {
	p, dest, ok := parseDirect(nc)
	if !ok {
		_ = nc.Reject(gossh.ConnectionFailed, "malformed forward request")
		return
	}
	details := map[string]string{"destination": sanitize(dest)}
	pol := c.s.policy()
	t := pol.jumpTarget(p, dest)
	if t == nil {
		c.channelEvent(a, audit.Deny, "jump", "unknown target", details)
		_ = nc.Reject(gossh.Prohibited, msgUnknownTarget)
		return
	}
	details["target"] = t.cfg.Name
	if !pol.mayUse(a.who, t, c.s.now()) {
		c.channelEvent(a, audit.Deny, "jump", "not allowed on target "+t.cfg.Name, details)
		_ = nc.Reject(gossh.Prohibited, msgNotAllowed)
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	go gossh.DiscardRequests(reqs)
	c.channelEvent(a, audit.Allow, "jump", "", details)
	cc := &chanConn{Channel: ch, local: jumpAddr{dest}, remote: c.remote}
	inner := c.s.newConn(c.ctx, cc, c.remote, t, nil)
	cc.gone = inner.cancel
	defer inner.close("")
	sc, chans, greqs, err := gossh.NewServerConn(c.s.transport(cc), inner.serverConfig())
	if err != nil {
		inner.log.DebugContext(inner.ctx, "Inner ProxyJump handshake ended without a session.", "error", err)
		return
	}
	defer sc.Close()
	inner.serveChannels(sc, chans, greqs)
}

// chanConn presents an SSH channel as a net.Conn for the inner handshake.
type chanConn struct {
	gossh.Channel
	local, remote net.Addr
	gone          func() // called when reading fails: the client left
}

func (c *chanConn) Read(b []byte) (int, error) {
	n, err := c.Channel.Read(b)
	if err != nil && c.gone != nil {
		c.gone()
	}
	return n, err
}

func (c *chanConn) LocalAddr() net.Addr              { return c.local }
func (c *chanConn) RemoteAddr() net.Addr             { return c.remote }
func (c *chanConn) SetDeadline(time.Time) error      { return nil }
func (c *chanConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chanConn) SetWriteDeadline(time.Time) error { return nil }

// jumpAddr is the address a ProxyJump channel was opened to.
type jumpAddr struct{ s string }

func (a jumpAddr) Network() string { return "ssh-jump" }
func (a jumpAddr) String() string  { return a.s }
