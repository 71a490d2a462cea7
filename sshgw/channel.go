package sshgw

import (
	"context"

	glssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// channelHandler is gliderlabs' handler for the channel types the gateway
// knows ("session", "direct-tcpip"); gliderlabs rejects all others.
func (s *Server) channelHandler(_ *glssh.Server, sc *gossh.ServerConn, nc gossh.NewChannel, ctx glssh.Context) {
	c, _ := ctx.Value(connKey).(*conn)
	if c == nil {
		_ = nc.Reject(gossh.Prohibited, "no session")
		return
	}
	c.handleChannel(sc, nc)
}

// globalRequest is gliderlabs' handler for tcpip-forward and
// cancel-tcpip-forward; every other global request is refused by
// gliderlabs.
func (s *Server) globalRequest(ctx glssh.Context, _ *glssh.Server, req *gossh.Request) (bool, []byte) {
	c, _ := ctx.Value(connKey).(*conn)
	sc, _ := ctx.Value(glssh.ContextKeyConn).(*gossh.ServerConn)
	if c == nil || sc == nil {
		return false, nil
	}
	return c.globalRequest(sc, req)
}

// session returns the authentication result if sc is this connection's
// authenticated SSH connection; nil otherwise (fail closed).
func (c *conn) session(sc *gossh.ServerConn) *authResult {
	a := c.auth.Load()
	if a == nil || sc == nil || sc.Permissions == nil || sc.Permissions.Extensions[extSession] != c.id {
		return nil
	}
	return a
}

// handleChannel dispatches a channel the client opened.
func (c *conn) handleChannel(sc *gossh.ServerConn, nc gossh.NewChannel) {
	a := c.session(sc)
	if a == nil {
		_ = nc.Reject(gossh.Prohibited, "not authenticated")
		return
	}
	switch {
	case nc.ChannelType() == "session" && a.target == nil:
		c.listSession(nc, a)
	case nc.ChannelType() == "session":
		c.relaySession(sc, nc, a)
	case nc.ChannelType() == "direct-tcpip" && a.target == nil:
		c.jumpChannel(nc, a)
	case nc.ChannelType() == "direct-tcpip":
		c.forwardChannel(nc, a)
	default:
		c.channelEvent(a, audit.Deny, "channel "+sanitize(nc.ChannelType()), "channel type not allowed", nil)
		_ = nc.Reject(gossh.UnknownChannelType, "channel type not allowed")
	}
}

// serveChannels handles the channels and global requests of an SSH
// connection that gliderlabs does not run (the inner ProxyJump one) until
// it ends.
func (c *conn) serveChannels(sc *gossh.ServerConn, chans <-chan gossh.NewChannel, reqs <-chan *gossh.Request) {
	go func() {
		for r := range reqs {
			switch r.Type {
			case "tcpip-forward", "cancel-tcpip-forward":
				ok, payload := c.globalRequest(sc, r)
				_ = r.Reply(ok, payload)
			default:
				_ = r.Reply(false, nil)
			}
		}
	}()
	for nc := range chans {
		go c.handleChannel(sc, nc)
	}
}

// channelEvent audits a channel or request decision.
func (c *conn) channelEvent(a *authResult, decision, action, reason string, details map[string]string) {
	ev := audit.Event{
		Type:     "ssh.channel",
		Actor:    a.who.Email,
		Resource: "gateway",
		Action:   action,
		Decision: decision,
		Reason:   reason,
		Source:   c.remote.String(),
		Session:  c.id,
		Details:  details,
	}
	if a.target != nil {
		ev.Resource = "target:" + a.target.cfg.Name
	}
	c.s.logAudit(context.WithoutCancel(c.ctx), ev)
}
