package sshgw

import (
	"encoding/binary"
	"hash"
	"strconv"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/recording"
)

// The SFTP log watches an sftp subsystem's packet stream (SFTP version 3,
// draft-ietf-secsh-filexfer-02, as OpenSSH speaks it) both ways, as a copy
// beside the relay: it never blocks, alters or stops the relay. It records
// the operations that change or move files as recording events: open and
// close (path, bytes read and written, and the SHA-256 of the file when the
// handle moved it whole and in order), rename, remove, mkdir, rmdir,
// setstat, symlink and link. On anything it cannot parse it records "parse
// stopped" and watches no more; the relay goes on.
//
// Memory is bounded: a packet's head is buffered (at most sftpMaxPacket,
// for the few packet types whose paths it needs), file data is hashed as it
// streams past, and the outstanding requests, open handles and kept paths
// are capped.
const (
	sftpMaxPacket  = 256 << 10 // OpenSSH's sftp-server limit too
	sftpMaxPending = 512       // outstanding requests tracked (OpenSSH's client keeps at most 64 in flight by default)
	sftpMaxHandles = 256       // open file handles tracked
	sftpMaxHandle  = 256       // bytes in a handle (OpenSSH's are 4)
	sftpMaxPath    = 4096      // bytes of a path kept in an event
	sftpKeepBuf    = 4096      // a head buffer larger than this is freed after its packet
)

// SFTP packet types (draft-ietf-secsh-filexfer-02).
const (
	fxpInit          = 1
	fxpVersion       = 2
	fxpOpen          = 3
	fxpClose         = 4
	fxpRead          = 5
	fxpWrite         = 6
	fxpSetstat       = 9
	fxpFsetstat      = 10
	fxpOpendir       = 11
	fxpRemove        = 13
	fxpMkdir         = 14
	fxpRmdir         = 15
	fxpRename        = 18
	fxpSymlink       = 20
	fxpStatus        = 101
	fxpHandle        = 102
	fxpData          = 103
	fxpExtended      = 200
	fxpExtendedReply = 201
)

// SFTP open flags and status codes.
const (
	fxfRead   = 0x01
	fxfWrite  = 0x02
	fxfAppend = 0x04
	fxfCreat  = 0x08
	fxfTrunc  = 0x10
	fxfExcl   = 0x20
	fxOK      = 0
	fxEOF     = 1
)

var fxStatusNames = []string{"ok", "eof", "no such file", "permission denied", "failure", "bad message",
	"no connection", "connection lost", "op unsupported"}

// sftpLog is the state of one sftp session shared by both directions.
type sftpLog struct {
	emit func(recording.Event)
	now  func() time.Time

	mu       sync.Mutex // guards the fields below; each direction's stream is used by one goroutine
	stopped  bool
	pending  map[uint32]*sftpReq
	handles  map[string]*sftpFile
	req, res sftpStream
}

// sftpReq is a request waiting for its reply.
type sftpReq struct {
	op       string // event op, or "read", "write", "close", "opendir"
	path, to string
	handle   string
	offset   uint64 // a read's
	flags    uint32 // an open's
	fields   map[string]string
}

// sftpFile is an open file handle and what moved through it.
type sftpFile struct {
	path          string
	flags         uint32
	read, written int64
	rNext, wNext  uint64    // the offset at which the next in-order read or write starts
	rHash, wHash  hash.Hash // nil once out of order
	rEOF          bool      // a read at rNext hit the end of the file
}

func newSFTPLog(emit func(recording.Event), now func() time.Time) *sftpLog {
	l := &sftpLog{emit: emit, now: now, pending: map[uint32]*sftpReq{}, handles: map[string]*sftpFile{}}
	l.req.l, l.res.l, l.res.response = l, l, true
	return l
}

// request watches bytes the client sends.
func (l *sftpLog) request(p []byte) { l.req.feed(p) }

// response watches bytes the target sends.
func (l *sftpLog) response(p []byte) { l.res.feed(p) }

// finish records what the session's end left open: requests without a
// reply and handles never closed.
func (l *sftpLog) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.stopped = true
	for _, r := range l.pending {
		if f := l.event(r); f != nil {
			f["status"] = "no reply"
			l.send(f)
		}
	}
	for _, h := range l.handles {
		f := h.closeFields()
		f["status"] = "not closed"
		l.send(f)
	}
	l.pending, l.handles = nil, nil
}

// stop records that parsing stopped, and why; mu is held.
func (l *sftpLog) stop(why string) {
	if l.stopped {
		return
	}
	l.stopped = true
	l.pending, l.handles = nil, nil
	l.send(map[string]string{"op": "parse stopped", "reason": why})
}

// send emits an SFTP event; mu is held.
func (l *sftpLog) send(f map[string]string) {
	l.emit(recording.Event{Time: l.now(), Type: recording.EventSFTP, Fields: f})
}

// sftpStream frames one direction's packets.
type sftpStream struct {
	l        *sftpLog
	response bool
	head     []byte // the current packet's bytes kept so far, length prefix included
	total    int    // the current packet's size with its length prefix; 0 until known
	want     int    // head bytes needed before the packet is handled; 0 until its type is known
	data     int    // file data bytes left to stream past
	trail    int    // bytes after the data, passed without looking
	skip     int    // bytes left to pass without looking
	file     *sftpFile
	write    bool // the streamed data belongs to a write (else a read)
}

// feed parses p, which continues the stream. It never fails: trouble
// stops the log.
func (s *sftpStream) feed(p []byte) {
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(p) > 0 && !l.stopped {
		switch {
		case s.skip > 0:
			n := min(s.skip, len(p))
			s.skip -= n
			p = p[n:]
			if s.skip == 0 {
				s.reset()
			}
		case s.data > 0:
			n := min(s.data, len(p))
			s.stream(p[:n])
			s.data -= n
			p = p[n:]
			if s.data == 0 {
				s.dataDone()
			}
		default:
			want := s.need()
			n := min(want-len(s.head), len(p))
			s.head = append(s.head, p[:n]...)
			p = p[n:]
			if len(s.head) == want {
				s.advance()
			}
		}
	}
}

// need returns how many head bytes the current step needs.
func (s *sftpStream) need() int {
	switch {
	case s.total == 0:
		return 4
	case s.want > 0:
		return s.want
	default:
		return min(9, s.total) // length, type and request ID
	}
}

// advance acts on a head that reached the size need asked for.
func (s *sftpStream) advance() {
	l := s.l
	if s.total == 0 {
		n := binary.BigEndian.Uint32(s.head)
		if n < 5 || n > sftpMaxPacket {
			l.stop("packet length " + strconv.FormatUint(uint64(n), 10))
			return
		}
		s.total = int(n) + 4
		return
	}
	typ := s.head[4]
	if want := s.headSize(typ); want != len(s.head) {
		if want > s.total {
			l.stop("packet shorter than its fields")
			return
		}
		s.want = want // more of the head is needed
		return
	}
	switch {
	case s.isData(typ):
		s.startData(typ)
	case len(s.head) == s.total:
		s.handle(typ, s.head[5:])
		if !l.stopped {
			s.reset()
		}
	default:
		// A packet whose body is not needed: only its request ID was.
		if s.response && len(s.head) >= 9 {
			delete(l.pending, binary.BigEndian.Uint32(s.head[5:9]))
		}
		s.skip = s.total - len(s.head)
	}
}

// headSize is how much of a packet of type typ is kept, given the head so
// far: all of it for the packets that carry paths, handles and status, the
// fields before the data for reads' replies and writes, the request ID
// for the others. More than the packet stops the log.
func (s *sftpStream) headSize(typ byte) int {
	if s.response {
		switch typ {
		case fxpStatus, fxpHandle:
			return s.total
		case fxpData:
			return 13 // length, type, ID, data length
		}
		return min(9, s.total)
	}
	switch typ {
	case fxpOpen, fxpClose, fxpRead, fxpSetstat, fxpFsetstat, fxpOpendir, fxpRemove, fxpMkdir, fxpRmdir,
		fxpRename, fxpSymlink, fxpExtended:
		return s.total
	case fxpWrite:
		if len(s.head) < 13 {
			return 13 // up to the handle's length
		}
		hl := int(binary.BigEndian.Uint32(s.head[9:13]))
		if hl > sftpMaxHandle {
			return s.total + 1
		}
		return 13 + hl + 8 + 4 // handle, offset, data length
	}
	return min(9, s.total)
}

func (s *sftpStream) isData(typ byte) bool {
	return (s.response && typ == fxpData) || (!s.response && typ == fxpWrite)
}

// startData begins streaming the data of a read reply or a write request
// past its file's hash.
func (s *sftpStream) startData(typ byte) {
	l := s.l
	id := binary.BigEndian.Uint32(s.head[5:9])
	n := int(binary.BigEndian.Uint32(s.head[len(s.head)-4:]))
	if n > s.total-len(s.head) {
		l.stop("data longer than its packet")
		return
	}
	var offset uint64
	s.file, s.write = nil, typ == fxpWrite
	if s.write {
		handle := string(s.head[13 : len(s.head)-12])
		offset = binary.BigEndian.Uint64(s.head[len(s.head)-12:])
		s.file = l.handles[handle]
		if !l.track(id, &sftpReq{op: "write", handle: handle}) {
			return
		}
	} else if r := l.pending[id]; r != nil && r.op == "read" {
		delete(l.pending, id)
		s.file, offset = l.handles[r.handle], r.offset
	}
	if f := s.file; f != nil {
		f.moved(s.write, offset, n)
	}
	s.data, s.trail = n, s.total-len(s.head)-n
	if n == 0 {
		s.dataDone()
	}
}

// stream hashes a piece of streamed data.
func (s *sftpStream) stream(p []byte) {
	f := s.file
	switch {
	case f == nil:
	case s.write && f.wHash != nil:
		f.wHash.Write(p)
	case !s.write && f.rHash != nil:
		f.rHash.Write(p)
	}
}

// dataDone ends a packet's data: what follows it is skipped.
func (s *sftpStream) dataDone() {
	s.file = nil
	if s.trail > 0 {
		s.skip, s.trail = s.trail, 0
		return
	}
	s.reset()
}

// reset prepares for the next packet.
func (s *sftpStream) reset() {
	if cap(s.head) > sftpKeepBuf {
		s.head = nil
	}
	s.head, s.total, s.want, s.data, s.trail, s.skip, s.file = s.head[:0], 0, 0, 0, 0, 0, nil
}

// track notes a request waiting for its reply; false if too many are.
func (l *sftpLog) track(id uint32, r *sftpReq) bool {
	if len(l.pending) >= sftpMaxPending {
		l.stop("too many outstanding requests")
		return false
	}
	l.pending[id] = r
	return true
}
