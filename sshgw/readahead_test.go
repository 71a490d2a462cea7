package sshgw

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection, the accepted
// one wrapped by s.transport.
func tcpPair(t *testing.T, s *Server) (peer net.Conn, a *readAhead) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	ra, ok := s.transport(nc).(*readAhead)
	if !ok {
		t.Fatalf("transport of a TCP connection is %T, want *readAhead", s.transport(nc))
	}
	return peer, ra
}

func readAheadServer() *Server { return &Server{readBufs: bufPool{size: readAheadSize}} }

func TestReadAheadDeliversTheStream(t *testing.T) {
	// Two connections at once, sharing the server's pool.
	s := readAheadServer()
	done := make(chan struct{})
	for i := range 2 {
		peer, a := tcpPair(t, s)
		go func() {
			defer func() { done <- struct{}{} }()
			checkStream(t, peer, a, uint64(i))
		}()
	}
	<-done
	<-done
}

// checkStream writes 3 MiB of random bytes into peer in chunks of every
// size, with pauses, and checks that a delivers them all, in order.
func checkStream(t *testing.T, peer net.Conn, a *readAhead, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	want := make([]byte, 3<<20)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	go func() {
		wrng := rand.New(rand.NewPCG(seed, 3))
		rest := want
		for len(rest) > 0 {
			n := min(len(rest), 1+wrng.IntN(100<<10))
			if _, err := peer.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
			if wrng.IntN(8) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		peer.Close()
	}()
	// Reads the sizes x/crypto's bufio.Reader asks for: 4 KiB fills and
	// the rest of a packet read past it.
	var got bytes.Buffer
	buf := make([]byte, 40<<10)
	sizes := []int{4 << 10, 28 << 10, 1, 40 << 10}
	for i := 0; ; i++ {
		n, err := a.Read(buf[:sizes[i%len(sizes)]])
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Errorf("read after %d bytes: %v", got.Len(), err)
			return
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("read %d bytes that differ from the %d written", got.Len(), len(want))
	}
	if a.buf != nil {
		t.Error("buffer still held after the stream ended")
	}
}

// readPartly sends ten bytes and reads the first four of them, so that
// a holds the other six read ahead.
func readPartly(t *testing.T, peer net.Conn, a *readAhead) {
	t.Helper()
	if _, err := peer.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4)
	if n, err := io.ReadFull(a, p); err != nil || string(p[:n]) != "0123" {
		t.Fatalf("read %q, %v", p[:n], err)
	}
}

func TestReadAheadHoldsNoBufferWhenDrained(t *testing.T) {
	peer, a := tcpPair(t, readAheadServer())
	readPartly(t, peer, a)
	if a.buf == nil || string(a.data) != "456789" {
		t.Fatalf("after a partial read: buf %v, data %q; want the rest held", a.buf != nil, a.data)
	}
	p := make([]byte, 64)
	if n, err := a.Read(p); err != nil || string(p[:n]) != "456789" {
		t.Fatalf("read %q, %v", p[:n], err)
	}
	if a.buf != nil || len(a.data) != 0 {
		t.Error("buffer still held after everything was read")
	}
}

func TestReadAheadDeadlineAndClose(t *testing.T) {
	_, a := tcpPair(t, readAheadServer())
	// A deadline set on the wrapped connection ends a waiting Read.
	if err := a.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := a.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout net.Error", err)
	}
	if err := a.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	// Close ends a waiting Read.
	done := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 10))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Read returned %v with nothing to read", err)
	case <-time.After(50 * time.Millisecond): // it waits
	}
	a.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read during Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the waiting Read")
	}
}

func TestReadAheadFailsAfterCloseWithDataHeld(t *testing.T) {
	peer, a := tcpPair(t, readAheadServer())
	readPartly(t, peer, a)
	if len(a.data) == 0 {
		t.Fatal("nothing held after a partial read")
	}
	// conn.close closes the socket, not the wrapper.
	a.Conn.(*coalescer).Conn.Close()
	n, err := a.Read(make([]byte, 64))
	if n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close = %d, %v; want 0 and net.ErrClosed", n, err)
	}
	if a.buf != nil {
		t.Error("buffer still held after the failed read")
	}
}

func TestTransportOfANonSocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, ok := readAheadServer().transport(a).(*coalescer); !ok {
		t.Fatal("transport of a net.Pipe is not the plain coalescer")
	}
}
