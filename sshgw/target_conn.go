package sshgw

import (
	"sync"

	gossh "golang.org/x/crypto/ssh"
)

// targetChanBuffer is how many channel opens of one type wait for their
// handler, as in x/crypto's Client. Opens beyond it are rejected.
const targetChanBuffer = 16

// targetConn is the SSH connection to a target: what sshgw uses of
// x/crypto's Client (OpenChannel, SendRequest, HandleChannelOpen, Close)
// without ssh.NewClient's three goroutines per connection (one for global
// requests, one for channel opens, one waiting to close port forwards
// sshgw never makes). One goroutine serves both here. An idle session's
// memory is mostly goroutine stacks (bench/ssh's idle mode), and every
// session has one of these.
//
// Because one goroutine does both, it never waits for a handler: an open
// that finds its handler's queue full is rejected, so that the target's
// requests (keep-alives above all) are still answered.
type targetConn struct {
	gossh.Conn

	mu       sync.Mutex
	handlers map[string]chan gossh.NewChannel // nil once the connection ended
	done     chan struct{}                    // closed when serve returned
}

// newTargetConn serves the requests and channel opens the target sends on
// c until it closes.
func newTargetConn(c gossh.Conn, chans <-chan gossh.NewChannel, reqs <-chan *gossh.Request) *targetConn {
	t := &targetConn{Conn: c, handlers: map[string]chan gossh.NewChannel{}, done: make(chan struct{})}
	go t.serve(chans, reqs)
	return t
}

// serve refuses the target's global requests (keep-alives among them,
// the answer OpenSSH gives) and hands each channel open to the handler of
// its type, rejecting types nobody handles.
func (t *targetConn) serve(chans <-chan gossh.NewChannel, reqs <-chan *gossh.Request) {
	defer close(t.done)
	for chans != nil || reqs != nil {
		select {
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		case nc, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			t.mu.Lock()
			h := t.handlers[nc.ChannelType()]
			t.mu.Unlock()
			if h == nil {
				_ = nc.Reject(gossh.UnknownChannelType, "unknown channel type")
				continue
			}
			select {
			case h <- nc:
			default:
				_ = nc.Reject(gossh.ResourceShortage, "too many channels waiting")
			}
		}
	}
	t.mu.Lock()
	for _, h := range t.handlers {
		close(h)
	}
	t.handlers = nil
	t.mu.Unlock()
}

// HandleChannelOpen returns the channel opens of chanType the target
// sends, or nil when that type already has a handler. After the
// connection ended it returns a closed channel.
func (t *targetConn) HandleChannelOpen(chanType string) <-chan gossh.NewChannel {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.handlers == nil {
		h := make(chan gossh.NewChannel)
		close(h)
		return h
	}
	if t.handlers[chanType] != nil {
		return nil
	}
	h := make(chan gossh.NewChannel, targetChanBuffer)
	t.handlers[chanType] = h
	return h
}
