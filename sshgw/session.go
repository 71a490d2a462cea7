package sshgw

import (
	"sync"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// maxAuditCommand bounds how much of an exec command the audit event keeps.
const maxAuditCommand = 1024

// upstreamSessionRequests are the requests a target may send on a session
// channel; they are passed to the client.
var upstreamSessionRequests = map[string]bool{
	"exit-status":           true,
	"exit-signal":           true,
	"eow@openssh.com":       true,
	"keepalive@openssh.com": true,
}

// relaySession opens a session on the target and relays data, stderr and
// the requests that the target's policy allows, until both sides are done.
func (c *conn) relaySession(sc *gossh.ServerConn, nc gossh.NewChannel, a *authResult) {
	up, upReqs, err := a.up.OpenChannel("session", nil)
	if err != nil {
		c.log.WarnContext(c.ctx, "Target refused a session channel.", "error", err)
		_ = nc.Reject(gossh.ConnectionFailed, "target refused the session")
		return
	}
	down, downReqs, err := nc.Accept()
	if err != nil {
		_ = up.Close()
		return
	}
	defer c.addNotice(down.Stderr())()
	var out sync.WaitGroup // target -> client data
	out.Add(2)
	go func() { defer out.Done(); c.pipe(down, up) }()
	go func() { defer out.Done(); c.pipe(down.Stderr(), up.Stderr()) }()
	go func() {
		c.pipe(up, down)
		_ = up.CloseWrite()
	}()
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		for r := range upReqs {
			if !upstreamSessionRequests[r.Type] {
				_ = r.Reply(false, nil)
				continue
			}
			ok, err := down.SendRequest(r.Type, r.WantReply, r.Payload)
			if r.WantReply {
				_ = r.Reply(ok && err == nil, nil)
			}
		}
	}()
	// reqMu is held while a client request is passed on, so the channel
	// is not closed between the target's reply and ours.
	var reqMu sync.Mutex
	go func() {
		for r := range downReqs {
			reqMu.Lock()
			c.sessionRequest(sc, a, up, r)
			reqMu.Unlock()
		}
		// The client closed the channel.
		_ = up.Close()
	}()
	out.Wait()
	_ = down.CloseWrite()
	<-upDone // exit-status has been passed on
	reqMu.Lock()
	_ = down.Close()
	reqMu.Unlock()
}

// sessionRequest applies the target's policy to one request on a session
// channel and passes it to the target if allowed.
func (c *conn) sessionRequest(sc *gossh.ServerConn, a *authResult, up gossh.Channel, r *gossh.Request) {
	t := a.target
	allowed, why := false, "request not allowed"
	details := map[string]string(nil)
	switch r.Type {
	case "pty-req", "window-change", "signal":
		allowed = true
	case "shell":
		allowed = true
		c.channelEvent(a, audit.Allow, "shell", "", nil)
	case "exec":
		var p struct{ Command string }
		if err := gossh.Unmarshal(r.Payload, &p); err == nil {
			allowed = true
			cmd := p.Command
			if len(cmd) > maxAuditCommand {
				cmd = cmd[:maxAuditCommand] + "..."
			}
			c.channelEvent(a, audit.Allow, "exec", "", map[string]string{"command": sanitize(cmd)})
		}
	case "env":
		var p struct{ Name, Value string }
		if err := gossh.Unmarshal(r.Payload, &p); err == nil && t.env[p.Name] {
			allowed = true
		} else {
			// Clients send LANG and LC_* by default: refuse quietly.
			_ = r.Reply(false, nil)
			return
		}
	case "subsystem":
		var p struct{ Name string }
		if err := gossh.Unmarshal(r.Payload, &p); err == nil && p.Name == "sftp" {
			allowed = true
			c.channelEvent(a, audit.Allow, "subsystem sftp", "", nil)
		} else {
			why, details = "subsystem not allowed", map[string]string{"subsystem": sanitize(p.Name)}
		}
	case "x11-req":
		allowed = t.cfg.X11 && c.acceptReverse(sc, a, "x11")
		why = "X11 forwarding is off for this target"
	case "auth-agent-req@openssh.com":
		allowed = t.cfg.AgentForward && c.acceptReverse(sc, a, "auth-agent@openssh.com")
		why = "agent forwarding is off for this target"
	}
	if !allowed {
		c.channelEvent(a, audit.Deny, "request "+sanitize(r.Type), why, details)
		if r.WantReply {
			_ = r.Reply(false, nil)
		}
		return
	}
	ok, err := up.SendRequest(r.Type, r.WantReply, r.Payload)
	if r.WantReply {
		_ = r.Reply(ok && err == nil, nil)
	}
}

// globalRequest handles tcpip-forward and cancel-tcpip-forward: passed to
// the target only if the target allows remote forwarding.
func (c *conn) globalRequest(sc *gossh.ServerConn, r *gossh.Request) (bool, []byte) {
	a := c.session(sc)
	if a == nil {
		return false, nil
	}
	if a.target == nil || !a.target.cfg.RemoteForward || !c.acceptReverse(sc, a, "forwarded-tcpip") {
		c.channelEvent(a, audit.Deny, "request "+sanitize(r.Type), "remote forwarding is off for this target", nil)
		return false, nil
	}
	ok, payload, err := a.up.SendRequest(r.Type, true, r.Payload)
	if err != nil {
		return false, nil
	}
	c.channelEvent(a, audit.Allow, "request "+r.Type, "", nil)
	return ok, payload
}

// acceptReverse starts passing channels of chanType that the target opens
// (forwarded-tcpip, x11, agent) to the client. It reports whether they are
// passed; the first call for a type registers it.
func (c *conn) acceptReverse(sc *gossh.ServerConn, a *authResult, chanType string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reverse == nil {
		c.reverse = map[string]bool{}
	}
	if c.reverse[chanType] {
		return true
	}
	in := a.up.HandleChannelOpen(chanType)
	if in == nil {
		return false
	}
	c.reverse[chanType] = true
	go func() {
		for nc := range in {
			go c.reverseChannel(sc, a, nc)
		}
	}()
	return true
}

// reverseChannel passes one channel opened by the target to the client.
func (c *conn) reverseChannel(sc *gossh.ServerConn, a *authResult, nc gossh.NewChannel) {
	down, downReqs, err := sc.OpenChannel(nc.ChannelType(), nc.ExtraData())
	if err != nil {
		_ = nc.Reject(gossh.ConnectionFailed, "client refused the channel")
		return
	}
	up, upReqs, err := nc.Accept()
	if err != nil {
		_ = down.Close()
		return
	}
	c.channelEvent(a, audit.Allow, "channel "+nc.ChannelType(), "", nil)
	c.splice(down, downReqs, up, upReqs)
}

// splice relays data both ways between two channels. When one side closes,
// the data it sent is delivered and then the other side is closed too.
// Requests on either side are refused.
func (c *conn) splice(a gossh.Channel, aReqs <-chan *gossh.Request, b gossh.Channel, bReqs <-chan *gossh.Request) {
	ab, ba := make(chan struct{}), make(chan struct{})
	go func() { c.pipe(b, a); _ = b.CloseWrite(); close(ab) }()
	go func() { c.pipe(a, b); _ = a.CloseWrite(); close(ba) }()
	go func() { refuseRequests(aReqs); <-ab; _ = b.Close() }()
	go func() { refuseRequests(bReqs); <-ba; _ = a.Close() }()
	<-ab
	<-ba
	_ = a.Close()
	_ = b.Close()
}

// refuseRequests answers every request with failure until reqs closes
// (its channel closed).
func refuseRequests(reqs <-chan *gossh.Request) {
	for r := range reqs {
		if r.WantReply {
			_ = r.Reply(false, nil)
		}
	}
}
