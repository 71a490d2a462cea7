package sshgw

import (
	"io"
	"net"
	"os"
	"syscall"
)

// readAheadSize is the most readAhead reads from a socket at once: two
// SSH packets of bulk data.
const readAheadSize = 64 << 10

// readAhead gives x/crypto/ssh's transport bigger reads from a TCP socket.
// x/crypto reads each packet through a 4 KiB bufio.Reader: one read fills
// it with the packet's start, and the rest of a 32 KiB packet is read past
// it with another, so bulk data costs two system calls per packet, often
// with an EAGAIN and a poller wait between them (strace under bench/ssh:
// 2.26 reads per packet relayed). readAhead reads whatever the socket
// holds, up to readAheadSize, and serves x/crypto's reads from it (1.01
// reads per packet; bench/ssh, ten alternating pairs: relay 2.28 against
// 2.37 CPU-s/GiB, medians).
//
// The buffer comes from a pool and is taken only once the socket has data
// (through syscall.RawConn, whose wait honours deadlines and Close as
// net.Conn's Read does), and it goes back as soon as x/crypto has read it
// all. So a connection waiting for data, which is what most are, holds no
// buffer. Reads are not concurrent: x/crypto reads from one goroutine.
type readAhead struct {
	net.Conn
	rc   syscall.RawConn
	pool *bufPool
	buf  *[]byte // the pooled buffer while it holds unread data, else nil
	data []byte  // the unread part of *buf
}

// transport wraps a connection for x/crypto/ssh's transport: writes go
// through a coalescer, and reads from a TCP socket through a readAhead.
func (s *Server) transport(nc net.Conn) net.Conn {
	w := newCoalescer(nc)
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return w // not a socket (an inner ProxyJump connection, a test pipe)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return w
	}
	return &readAhead{Conn: w, rc: rc, pool: &s.readBufs}
}

func (a *readAhead) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(a.data) == 0 {
		if err := a.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, a.data)
	a.data = a.data[n:]
	if len(a.data) == 0 {
		a.release()
	}
	return n, nil
}

func (a *readAhead) release() {
	a.pool.put(a.buf)
	a.buf, a.data = nil, nil
}

// fill reads what the socket holds into a pooled buffer, waiting until it
// holds something.
func (a *readAhead) fill() error {
	var n int
	var rerr error
	err := a.rc.Read(func(fd uintptr) bool {
		buf := a.pool.get()
		for {
			n, rerr = syscall.Read(int(fd), *buf)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			a.pool.put(buf) // nothing yet: wait without holding it
			return false
		}
		a.buf = buf
		return true
	})
	switch {
	case err != nil: // deadline or Close, while waiting
		return a.opError(err)
	case rerr != nil:
		a.release()
		return a.opError(os.NewSyscallError("read", rerr))
	case n == 0:
		a.release()
		return io.EOF
	}
	a.data = (*a.buf)[:n]
	return nil
}

// opError wraps err as net.Conn's Read would.
func (a *readAhead) opError(err error) error {
	return &net.OpError{Op: "read", Net: "tcp", Source: a.LocalAddr(), Addr: a.RemoteAddr(), Err: err}
}
