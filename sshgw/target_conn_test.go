package sshgw

import (
	"errors"
	"net"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// targetConnPair connects a targetConn to an in-process x/crypto server
// over loopback TCP and returns the server's side of the connection.
func targetConnPair(t *testing.T) (*targetConn, *gossh.ServerConn) {
	t.Helper()
	signer := newSigner(t)
	scfg := &gossh.ServerConfig{NoClientAuth: true}
	scfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	type served struct {
		sc  *gossh.ServerConn
		err error
	}
	done := make(chan served, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			done <- served{err: err}
			return
		}
		sc, chans, reqs, err := gossh.NewServerConn(nc, scfg)
		if err == nil {
			go gossh.DiscardRequests(reqs)
			go func() {
				for nc := range chans {
					_ = nc.Reject(gossh.Prohibited, "no")
				}
			}()
		}
		done <- served{sc, err}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc, chans, reqs, err := gossh.NewClientConn(nc, ln.Addr().String(), &gossh.ClientConfig{
		User: "u", HostKeyCallback: gossh.FixedHostKey(signer.PublicKey()),
	})
	if err != nil {
		t.Fatal(err)
	}
	tc := newTargetConn(cc, chans, reqs)
	t.Cleanup(func() { tc.Close() })
	s := <-done
	if s.err != nil {
		t.Fatal(s.err)
	}
	t.Cleanup(func() { s.sc.Close() })
	return tc, s.sc
}

// within fails the test if f does not return in time: a broken targetConn
// must fail the test, not hang it.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no answer in 5s", what)
	}
}

func TestTargetConnRoutesChannelOpens(t *testing.T) {
	tc, sc := targetConnPair(t)

	// A global request (OpenSSH's keep-alive) gets "no", as from Client.
	within(t, "keep-alive", func() {
		if ok, _, err := sc.SendRequest("keepalive@openssh.com", true, nil); err != nil || ok {
			t.Errorf("keep-alive: ok=%v err=%v, want a refusal", ok, err)
		}
	})
	// A type nobody handles is rejected.
	within(t, "x11 open", func() {
		_, _, err := sc.OpenChannel("x11", nil)
		var oc *gossh.OpenChannelError
		if !errors.As(err, &oc) || oc.Reason != gossh.UnknownChannelType {
			t.Errorf("unhandled x11 open: %v, want UnknownChannelType", err)
		}
	})
	// A handled type reaches its handler; a second handler is refused.
	in := tc.HandleChannelOpen("forwarded-tcpip")
	if in == nil {
		t.Fatal("first handler for forwarded-tcpip refused")
	}
	if tc.HandleChannelOpen("forwarded-tcpip") != nil {
		t.Error("second handler for forwarded-tcpip accepted")
	}
	go func() {
		nc, ok := <-in
		if !ok {
			return
		}
		ch, reqs, err := nc.Accept()
		if err == nil {
			go gossh.DiscardRequests(reqs)
			ch.Close()
		}
	}()
	within(t, "forwarded-tcpip open", func() {
		ch, reqs, err := sc.OpenChannel("forwarded-tcpip", []byte("x"))
		if err != nil {
			t.Errorf("handled forwarded-tcpip open: %v", err)
			return
		}
		go gossh.DiscardRequests(reqs)
		ch.Close()
	})

	// When the connection ends, handlers see their channel close, a later
	// registration gets a closed channel, and the goroutine is gone.
	tc.Close()
	within(t, "handler channel closing", func() {
		if _, open := <-in; open {
			t.Error("handler received a channel after the connection ended")
		}
	})
	within(t, "serve returning", func() { <-tc.done })
	within(t, "registration after the end", func() {
		if _, open := <-tc.HandleChannelOpen("auth-agent@openssh.com"); open {
			t.Error("registration after the end returned an open channel")
		}
	})
}

// A handler that does not keep up must not stall the connection: opens
// beyond its queue are rejected and requests are still answered.
func TestTargetConnFullHandler(t *testing.T) {
	tc, sc := targetConnPair(t)
	if tc.HandleChannelOpen("forwarded-tcpip") == nil {
		t.Fatal("handler refused")
	}
	// Fill the queue: these opens wait for an answer that never comes
	// (until the connection closes at cleanup).
	for range targetChanBuffer {
		go func() {
			if ch, reqs, err := sc.OpenChannel("forwarded-tcpip", nil); err == nil {
				go gossh.DiscardRequests(reqs)
				ch.Close()
			}
		}()
	}
	queued := func() int {
		tc.mu.Lock()
		defer tc.mu.Unlock()
		return len(tc.handlers["forwarded-tcpip"])
	}
	for deadline := time.Now().Add(5 * time.Second); queued() < targetChanBuffer; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d opens queued", queued(), targetChanBuffer)
		}
		time.Sleep(5 * time.Millisecond)
	}
	within(t, "open beyond the queue", func() {
		_, _, err := sc.OpenChannel("forwarded-tcpip", nil)
		var oc *gossh.OpenChannelError
		if !errors.As(err, &oc) || oc.Reason != gossh.ResourceShortage {
			t.Errorf("open beyond the queue: %v, want ResourceShortage", err)
		}
	})
	within(t, "keep-alive with a full queue", func() {
		if _, _, err := sc.SendRequest("keepalive@openssh.com", true, nil); err != nil {
			t.Errorf("keep-alive: %v", err)
		}
	})
}
