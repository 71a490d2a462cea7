package sshgw

import (
	"errors"
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
// buffer. One whose x/crypto reader is stalled (its queue of unhandled
// packets full) holds what was read ahead, at most readAheadSize. Reads
// are not concurrent: x/crypto reads from one goroutine.
type readAhead struct {
	net.Conn
	rc   syscall.RawConn
	pool *bufPool
	buf  *[]byte // the pooled buffer while it holds unread data, else nil
	data []byte  // the unread part of *buf

	// The outcome of the last read system call, and the function that
	// makes it, bound once so that a fill allocates nothing.
	n      int
	rerr   error
	readFD func(fd uintptr) bool
}

// transport wraps a connection for x/crypto/ssh's transport: writes go
// through a coalescer, and reads from a TCP socket through a readAhead.
func (s *Server) transport(nc net.Conn) net.Conn {
	w := newCoalescer(nc)
	// Only a *net.TCPConn: a wrapper that embeds one but has its own Read
	// (a PROXY protocol listener's, say) must be read through that Read.
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return w // not a socket (an inner ProxyJump connection, a test pipe)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return w
	}
	a := &readAhead{Conn: w, rc: rc, pool: &s.readBufs}
	a.readFD = a.readSocket
	return a
}

func (a *readAhead) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(a.data) == 0 {
		if err := a.fill(); err != nil {
			return 0, err
		}
	} else if err := a.rc.Read(isOpen); err != nil {
		// Closed (or past a read deadline) with data still read ahead:
		// fail as a socket read would, so that nothing received before
		// the close is handed to x/crypto after it. No system call: the
		// check is the poller's.
		a.release()
		return 0, a.opError(err)
	}
	n := copy(p, a.data)
	a.data = a.data[n:]
	if len(a.data) == 0 {
		a.release()
	}
	return n, nil
}

// isOpen is a RawConn read that reads nothing: RawConn.Read fails on a
// closed connection or a passed deadline before it calls it.
func isOpen(uintptr) bool { return true }

func (a *readAhead) release() {
	if a.buf != nil {
		a.pool.put(a.buf)
	}
	a.buf, a.data = nil, nil
}

// fill reads what the socket holds into a pooled buffer, waiting until it
// holds something.
func (a *readAhead) fill() error {
	if err := a.rc.Read(a.readFD); err != nil {
		return a.opError(err) // deadline or Close, while waiting
	}
	switch {
	case a.rerr != nil:
		a.release()
		return a.opError(os.NewSyscallError("read", a.rerr))
	case a.n == 0:
		a.release()
		return io.EOF
	}
	a.data = (*a.buf)[:a.n]
	return nil
}

// readSocket is fill's RawConn read: it takes a buffer for the read and
// gives it back if the socket has nothing yet, so that the wait that
// follows holds none.
func (a *readAhead) readSocket(fd uintptr) bool {
	buf := a.pool.get()
	for {
		a.n, a.rerr = syscall.Read(int(fd), *buf)
		if a.rerr != syscall.EINTR {
			break
		}
	}
	if a.rerr == syscall.EAGAIN {
		a.pool.put(buf)
		return false
	}
	a.buf = buf
	return true
}

// opError wraps err as net.Conn's Read would. RawConn's own errors come
// wrapped as a "raw-read"; their cause is kept.
func (a *readAhead) opError(err error) error {
	if op, ok := errors.AsType[*net.OpError](err); ok {
		err = op.Err
	}
	return &net.OpError{Op: "read", Net: "tcp", Source: a.LocalAddr(), Addr: a.RemoteAddr(), Err: err}
}
