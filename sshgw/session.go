package sshgw

import (
	"errors"
	"sync"
	"sync/atomic"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/recording"
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
// The session is recorded (see chanRec): no data moves either way until
// the channel's program (shell, exec, sftp) has started and its recording
// with it.
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
	rec := c.newChanRec(a, down, func() { _ = up.Close(); _ = down.Close() })
	// started is closed once the program's start request was handled, or
	// the channel closed without one.
	started := make(chan struct{})
	var startOnce sync.Once
	begin := func() { startOnce.Do(func() { close(started) }) }
	// outDone is closed, and the client gets EOF, once both output pipes
	// (target -> client) ended: the last one to end does it, so that no
	// goroutine per session only waits (an idle session's goroutines are
	// most of its memory).
	outDone := make(chan struct{})
	var outLeft atomic.Int32
	outLeft.Store(2)
	outEnd := func() {
		if outLeft.Add(-1) == 0 {
			close(outDone)
			_ = down.CloseWrite()
		}
	}
	go func() { defer outEnd(); <-started; c.pipe(recWriter{w: down, r: rec}, up) }()
	go func() {
		defer outEnd()
		<-started
		c.pipe(recWriter{w: down.Stderr(), r: rec, stderr: true}, up.Stderr())
	}()
	go func() {
		<-started
		c.pipe(inWriter{w: up, r: rec}, down)
		_ = up.CloseWrite()
	}()
	// reqMu is held while a client request is passed on, so the channel
	// is not closed between the target's reply and ours.
	var reqMu sync.Mutex
	go func() {
		for r := range downReqs {
			reqMu.Lock()
			c.sessionRequest(sc, a, up, r, rec, begin)
			reqMu.Unlock()
		}
		// The client closed the channel.
		begin()
		_ = up.Close()
	}()
	c.upstreamRequests(upReqs, down, rec, outDone)
	begin() // the target closed the channel
	<-outDone
	rec.end() // exit-status has been passed on
	reqMu.Lock()
	_ = down.Close()
	reqMu.Unlock()
}

// upstreamRequests passes the requests the target sends on a session
// channel to the client until the target closes it.
func (c *conn) upstreamRequests(upReqs <-chan *gossh.Request, down gossh.Channel, rec *chanRec, outDone <-chan struct{}) {
	for r := range upReqs {
		if !upstreamSessionRequests[r.Type] {
			_ = r.Reply(false, nil)
			continue
		}
		rec.exit(r.Type, r.Payload)
		if r.Type == "exit-status" || r.Type == "exit-signal" {
			// The exit status goes out after the output it follows: if
			// recording that output failed, the client must not see the
			// target's success (the failure sent status 1 instead).
			<-outDone
			if rec.failed.Load() {
				if r.WantReply {
					_ = r.Reply(false, nil)
				}
				continue
			}
		}
		ok, err := down.SendRequest(r.Type, r.WantReply, r.Payload)
		if r.WantReply {
			_ = r.Reply(ok && err == nil, nil)
		}
	}
}

// sessionRequest applies the target's policy to one request on a session
// channel and passes it to the target if allowed. The first shell, exec or
// subsystem request starts the recording (and then the relay, begin); a
// second one is refused, as the channel already runs a program.
func (c *conn) sessionRequest(sc *gossh.ServerConn, a *authResult, up gossh.Channel, r *gossh.Request, rec *chanRec, begin func()) {
	t := a.target
	allowed, why := false, "request not allowed"
	details := map[string]string(nil)
	kind, command := "", ""
	switch r.Type {
	case "pty-req":
		allowed = true
		rec.pty(r.Payload)
	case "window-change":
		allowed = true
		rec.resize(r.Payload)
	case "signal":
		allowed = true
	case "shell":
		allowed, kind = true, recording.KindShell
		c.channelEvent(a, audit.Allow, "shell", "", nil)
	case "exec":
		var p struct{ Command string }
		if err := gossh.Unmarshal(r.Payload, &p); err == nil {
			allowed, kind, command = true, recording.KindExec, p.Command
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
			allowed, kind = true, recording.KindSFTP
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
	if kind != "" {
		err := rec.start(kind, command)
		begin()
		switch {
		case errors.Is(err, errSecondProgram):
			c.channelEvent(a, audit.Deny, "request "+r.Type, err.Error(), nil)
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
			return
		case err != nil:
			rec.refuseStart(err, r)
			return
		}
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
// Requests on either side are refused. It returns the bytes copied from a
// to b and from b to a.
func (c *conn) splice(a gossh.Channel, aReqs <-chan *gossh.Request, b gossh.Channel, bReqs <-chan *gossh.Request) (aToB, bToA int64) {
	ab, ba := make(chan struct{}), make(chan struct{})
	go func() { aToB = c.pipe(b, a); _ = b.CloseWrite(); close(ab) }()
	go func() { bToA = c.pipe(a, b); _ = a.CloseWrite(); close(ba) }()
	go func() { refuseRequests(aReqs); <-ab; _ = b.Close() }()
	go func() { refuseRequests(bReqs); <-ba; _ = a.Close() }()
	<-ab
	<-ba
	_ = a.Close()
	_ = b.Close()
	return aToB, bToA
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
