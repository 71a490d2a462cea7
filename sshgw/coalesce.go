package sshgw

import (
	"bytes"
	"encoding/binary"
	"net"
)

// x/crypto/ssh writes each SSH packet through a 4 KiB bufio.Writer: the
// 4-byte length goes into the buffer first, so every packet larger than
// 4092 bytes reaches the connection as one 4096-byte write followed by a
// write of the rest. For the 32 KiB packets of bulk data that doubles the
// write system calls (and the receiver's wake-ups). coalescer puts each
// packet back together and sends it with one writev.
//
// It can do so because x/crypto writes exactly one packet per Flush and
// the packet length is readable: in the clear before the first NEWKEYS
// (4 + length bytes), and in the clear with AES-GCM afterwards (4 + length
// + 16-byte tag). The gateway negotiates nothing but AES-GCM in both
// directions (crypto.go); if anything ever does not fit this framing, the
// coalescer stops coalescing for good and passes writes through.

const (
	gcmTagLen    = 16
	msgNewKeys   = 21
	maxPacketLen = 1 << 20 // x/crypto's limit is 256 KiB; anything bigger means we lost the framing
)

// Coalescer states.
const (
	coVersion     = iota // before the version line
	coClear              // packets without encryption (first key exchange)
	coGCM                // AES-GCM packets
	coPassthrough        // framing lost: write as given
)

// coalescer reassembles x/crypto's split packet writes. Writes must not be
// concurrent, which x/crypto guarantees (its transport serializes them).
type coalescer struct {
	net.Conn
	state    int
	newKeys  bool   // the packet being held or written is NEWKEYS
	need     int    // bytes missing from the held packet; 0 at a boundary
	held     []byte // the start of the current packet
	vectored bool   // Conn supports writev through net.Buffers
}

func newCoalescer(c net.Conn) *coalescer {
	_, tcp := c.(*net.TCPConn)
	return &coalescer{Conn: c, vectored: tcp}
}

func (w *coalescer) Write(p []byte) (int, error) {
	switch w.state {
	case coPassthrough:
		return w.Conn.Write(p)
	case coVersion:
		if bytes.HasSuffix(p, []byte("\n")) {
			w.state = coClear
		}
		return w.Conn.Write(p)
	}
	if w.need > 0 {
		return w.continuePacket(p)
	}
	if len(p) < 6 {
		return w.passthrough(p)
	}
	n := int(binary.BigEndian.Uint32(p))
	total := 4 + n
	if w.state == coGCM {
		total += gcmTagLen
	}
	if n < 5 || n > maxPacketLen || len(p) > total {
		return w.passthrough(p)
	}
	// In the clear, the payload's first byte (after the padding length)
	// is the message type; NEWKEYS switches the following packets to GCM.
	w.newKeys = w.state == coClear && p[5] == msgNewKeys
	if len(p) == total {
		return w.complete(p)
	}
	w.held = append(w.held[:0], p...)
	w.need = total - len(p)
	return len(p), nil
}

// continuePacket adds p to the held packet and sends the packet once it is
// whole.
func (w *coalescer) continuePacket(p []byte) (int, error) {
	switch {
	case len(p) < w.need:
		w.held = append(w.held, p...)
		w.need -= len(p)
		return len(p), nil
	case len(p) > w.need:
		return w.passthrough(p)
	}
	w.need = 0
	var err error
	if w.vectored {
		bufs := net.Buffers{w.held, p}
		_, err = bufs.WriteTo(w.Conn)
	} else {
		w.held = append(w.held, p...)
		_, err = w.Conn.Write(w.held)
	}
	w.held = w.held[:0]
	if err != nil {
		return 0, err
	}
	w.afterPacket()
	return len(p), nil
}

// complete writes a whole packet.
func (w *coalescer) complete(p []byte) (int, error) {
	n, err := w.Conn.Write(p)
	if err == nil {
		w.afterPacket()
	}
	return n, err
}

func (w *coalescer) afterPacket() {
	if w.newKeys {
		w.state, w.newKeys = coGCM, false
	}
}

// passthrough gives up on the framing: it sends what is held and p, and
// every later write as is.
func (w *coalescer) passthrough(p []byte) (int, error) {
	w.state = coPassthrough
	if len(w.held) > 0 {
		held := w.held
		w.held, w.need = nil, 0
		if _, err := w.Conn.Write(held); err != nil {
			return 0, err
		}
	}
	return w.Conn.Write(p)
}
