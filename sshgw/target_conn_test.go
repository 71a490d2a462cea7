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

func TestTargetConnRoutesChannelOpens(t *testing.T) {
	tc, sc := targetConnPair(t)

	// A global request (OpenSSH's keep-alive) gets "no", as from Client.
	ok, _, err := sc.SendRequest("keepalive@openssh.com", true, nil)
	if err != nil || ok {
		t.Errorf("keep-alive: ok=%v err=%v, want a refusal", ok, err)
	}
	// A type nobody handles is rejected.
	_, _, err = sc.OpenChannel("x11", nil)
	var oc *gossh.OpenChannelError
	if !errors.As(err, &oc) || oc.Reason != gossh.UnknownChannelType {
		t.Errorf("unhandled x11 open: %v, want UnknownChannelType", err)
	}
	// A handled type reaches its handler; a second handler is refused.
	in := tc.HandleChannelOpen("forwarded-tcpip")
	if in == nil {
		t.Fatal("first handler for forwarded-tcpip refused")
	}
	if tc.HandleChannelOpen("forwarded-tcpip") != nil {
		t.Error("second handler for forwarded-tcpip accepted")
	}
	go func() {
		nc := <-in
		if nc == nil {
			return
		}
		ch, reqs, err := nc.Accept()
		if err == nil {
			go gossh.DiscardRequests(reqs)
			ch.Close()
		}
	}()
	ch, reqs, err := sc.OpenChannel("forwarded-tcpip", []byte("x"))
	if err != nil {
		t.Fatalf("handled forwarded-tcpip open: %v", err)
	}
	go gossh.DiscardRequests(reqs)
	ch.Close()

	// When the connection ends, handlers see their channel close, and a
	// later registration gets a closed channel.
	sc.Close()
	select {
	case _, open := <-in:
		if open {
			t.Error("handler received a channel after the connection ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler channel not closed after the connection ended")
	}
	if _, open := <-tc.HandleChannelOpen("auth-agent@openssh.com"); open {
		t.Error("registration after the end returned an open channel")
	}
}
