package sshgw

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// countingConn counts writes; it is not a *net.TCPConn, so the coalescer
// joins packets by copying.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
	big    int // writes of at least 16 KiB
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	if len(p) >= 16<<10 {
		c.big++
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// TestCoalescerKeepsStreamsIntact sends data of many sizes, including the
// packet sizes at x/crypto's 4 KiB buffer boundaries, from an x/crypto
// server through the coalescer to an x/crypto client, over TCP (writev) and
// over a counting conn (copy), and checks every byte and that each large
// packet became one write.
func TestCoalescerKeepsStreamsIntact(t *testing.T) {
	sizes := []int{1, 100, 4000, 4060, 4064, 4071, 4072, 4080, 4096, 8000, 8144, 8160, 8192, 12288, 32768, 100000, 1 << 20}
	for _, vectored := range []bool{true, false} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var counter *countingConn
		var co *coalescer
		srvErr := make(chan error, 1)
		go func() {
			nc, err := ln.Accept()
			ln.Close()
			if err != nil {
				srvErr <- err
				return
			}
			var conn net.Conn = nc
			if !vectored {
				counter = &countingConn{Conn: nc}
				conn = counter
			}
			cfg := &gossh.ServerConfig{Config: cryptoConfig(serverCiphers), NoClientAuth: true}
			cfg.AddHostKey(newSigner(t))
			co = newCoalescer(conn)
			sc, chans, reqs, err := gossh.NewServerConn(co, cfg)
			if err != nil {
				srvErr <- err
				return
			}
			defer sc.Close()
			go gossh.DiscardRequests(reqs)
			nch := <-chans
			ch, creqs, err := nch.Accept()
			if err != nil {
				srvErr <- err
				return
			}
			go gossh.DiscardRequests(creqs)
			for _, n := range sizes {
				buf := bytes.Repeat([]byte{byte(n)}, n)
				if _, err := ch.Write(buf); err != nil {
					srvErr <- err
					return
				}
			}
			ch.CloseWrite()
			_, _ = io.Copy(io.Discard, ch)
			srvErr <- nil
		}()
		cl, err := gossh.Dial("tcp", ln.Addr().String(), &gossh.ClientConfig{Config: cryptoConfig(clientCiphers),
			User: "x", HostKeyCallback: gossh.InsecureIgnoreHostKey()})
		if err != nil {
			t.Fatal(err)
		}
		ch, reqs, err := cl.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		go gossh.DiscardRequests(reqs)
		got, err := io.ReadAll(ch)
		if err != nil {
			t.Fatal(err)
		}
		ch.Close()
		cl.Close()
		if err := <-srvErr; err != nil {
			t.Fatal(err)
		}
		var want []byte
		for _, n := range sizes {
			want = append(want, bytes.Repeat([]byte{byte(n)}, n)...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("vectored=%v: stream differs (%d bytes, want %d)", vectored, len(got), len(want))
		}
		if co.state != coGCM {
			t.Errorf("vectored=%v: coalescer state %d, want GCM (framing lost?)", vectored, co.state)
		}
		if counter != nil {
			// 1 MiB and 100000 bytes in 32 KiB packets: about 36 packets of
			// at least 16 KiB, each in one write (not 4096 + rest).
			counter.mu.Lock()
			big, writes := counter.big, counter.writes
			counter.mu.Unlock()
			t.Logf("writes %d, large %d", writes, big)
			if big < 34 || writes > big+30 {
				t.Errorf("writes = %d, of which %d large; packets were not joined", writes, big)
			}
		}
	}
}
