package sshgw

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/recording"
)

// sftpPacket encodes an SFTP packet: fields are uint32, uint64, byte
// (type), string or []byte (length-prefixed).
func sftpPacket(typ byte, fields ...any) []byte {
	body := []byte{typ}
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			body = binary.BigEndian.AppendUint32(body, v)
		case uint64:
			body = binary.BigEndian.AppendUint64(body, v)
		case string:
			body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
			body = append(body, v...)
		case []byte:
			body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
			body = append(body, v...)
		default:
			panic(fmt.Sprintf("sftpPacket: %T", f))
		}
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// sftpTestClient speaks just enough SFTP to drive a server.
type sftpTestClient struct {
	t   *testing.T
	w   io.Writer
	r   io.Reader
	ids uint32
}

func (c *sftpTestClient) send(typ byte, fields ...any) uint32 {
	c.ids++
	if _, err := c.w.Write(sftpPacket(typ, append([]any{c.ids}, fields...)...)); err != nil {
		c.t.Fatalf("sftp send: %v", err)
	}
	return c.ids
}

// recv reads one reply: its type, request ID and the rest.
func (c *sftpTestClient) recv() (byte, uint32, []byte) {
	var n [4]byte
	if _, err := io.ReadFull(c.r, n[:]); err != nil {
		c.t.Fatalf("sftp recv: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(c.r, b); err != nil {
		c.t.Fatalf("sftp recv: %v", err)
	}
	return b[0], binary.BigEndian.Uint32(b[1:5]), b[5:]
}

// call sends a request and returns the reply's type and body.
func (c *sftpTestClient) call(typ byte, fields ...any) (byte, []byte) {
	id := c.send(typ, fields...)
	rt, rid, body := c.recv()
	if rid != id {
		c.t.Fatalf("reply to %d, want %d", rid, id)
	}
	return rt, body
}

func (c *sftpTestClient) open(path string, flags uint32) string {
	typ, body := c.call(fxpOpen, path, flags, uint32(0x04), uint32(0o644))
	if typ != fxpHandle {
		c.t.Fatalf("open %s: reply type %d", path, typ)
	}
	return string(body[4 : 4+binary.BigEndian.Uint32(body)])
}

func (c *sftpTestClient) status(typ byte, fields ...any) uint32 {
	rt, body := c.call(typ, fields...)
	if rt != fxpStatus {
		c.t.Fatalf("request %d: reply type %d, want status", typ, rt)
	}
	return binary.BigEndian.Uint32(body)
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestRecordSFTP drives the real OpenSSH sftp-server on the target
// through the gateway and checks the recorded file events.
func TestRecordSFTP(t *testing.T) {
	const server = "/usr/lib/openssh/sftp-server"
	if _, err := os.Stat(server); err != nil {
		t.Skip("no OpenSSH sftp-server:", err)
	}
	e := newEnv(t, Limits{}, nil)
	e.target.mu.Lock()
	e.target.sftpServer = server
	e.target.mu.Unlock()
	dir := t.TempDir()
	cl := e.dialBound(t, "ubuntu@prod")
	s, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := s.StdinPipe()
	out, _ := s.StdoutPipe()
	if err := s.RequestSubsystem("sftp"); err != nil {
		t.Fatal(err)
	}
	c := &sftpTestClient{t: t, w: in, r: out}
	if _, err := in.Write(sftpPacket(fxpInit, uint32(3))); err != nil {
		t.Fatal(err)
	}
	if typ, _, _ := c.recv(); typ != fxpVersion {
		t.Fatalf("init: reply %d", typ)
	}
	up := filepath.Join(dir, "up.txt")
	content := strings.Repeat("hello world\n", 5000) // several SSH packets
	h := c.open(up, fxfWrite|fxfCreat|fxfTrunc)
	// Pipelined in-order writes, as OpenSSH's sftp sends them.
	half := len(content) / 2
	w1 := c.send(fxpWrite, h, uint64(0), content[:half])
	w2 := c.send(fxpWrite, h, uint64(half), content[half:])
	for range []uint32{w1, w2} {
		if typ, _, body := c.recv(); typ != fxpStatus || binary.BigEndian.Uint32(body) != fxOK {
			t.Fatalf("write: %d %v", typ, body)
		}
	}
	if st := c.status(fxpClose, h); st != fxOK {
		t.Fatalf("close: %d", st)
	}
	// Read it whole, in two reads and one at the end of the file.
	h = c.open(up, fxfRead)
	got := ""
	for off := uint64(0); ; {
		typ, body := c.call(fxpRead, h, off, uint32(32<<10))
		if typ == fxpStatus {
			break
		}
		n := binary.BigEndian.Uint32(body)
		got += string(body[4 : 4+n])
		off += uint64(n)
	}
	if got != content {
		t.Fatalf("read back %d bytes, want %d", len(got), len(content))
	}
	c.status(fxpClose, h)
	// Read only the start: partial.
	h = c.open(up, fxfRead)
	c.call(fxpRead, h, uint64(0), uint32(5))
	c.status(fxpClose, h)
	moved := filepath.Join(dir, "moved.txt")
	sub := filepath.Join(dir, "sub")
	for _, st := range []struct {
		typ    byte
		fields []any
		want   uint32
	}{
		{fxpRename, []any{up, moved}, fxOK},
		{fxpMkdir, []any{sub, uint32(0x04), uint32(0o750)}, fxOK},
		{fxpSetstat, []any{moved, uint32(0x04), uint32(0o600)}, fxOK},
		{fxpRmdir, []any{sub}, fxOK},
		{fxpRemove, []any{moved}, fxOK},
		{fxpRemove, []any{moved}, 2}, // no such file
	} {
		if got := c.status(st.typ, st.fields...); got != st.want {
			t.Errorf("request %d %v: status %d, want %d", st.typ, st.fields, got, st.want)
		}
	}
	in.Close()
	_ = s.Wait()
	r := e.rec.waitClosed(t, 1)[0]
	if r.meta.Kind != recording.KindSFTP {
		t.Errorf("kind = %q", r.meta.Kind)
	}
	if r.output() != "" {
		t.Errorf("sftp data recorded as terminal output: %d bytes", len(r.output()))
	}
	var lines []string
	for _, ev := range r.eventsOf(recording.EventSFTP) {
		f := ev.Fields
		lines = append(lines, fmt.Sprintf("%s %s to=%s r=%s w=%s bytes=%s sha=%s st=%s mode=%s flags=%s",
			f["op"], strings.TrimPrefix(f["path"], dir), strings.TrimPrefix(f["to"], dir), f["bytes_read"], f["bytes_written"],
			f["bytes"], f["sha256"], f["status"], f["mode"], f["flags"]))
	}
	n := fmt.Sprint(len(content))
	want := []string{
		"open /up.txt to= r= w= bytes= sha= st= mode=0644 flags=write,create,truncate",
		"close /up.txt to= r=0 w=" + n + " bytes=" + n + " sha=" + sha(content) + " st= mode= flags=",
		"open /up.txt to= r= w= bytes= sha= st= mode=0644 flags=read",
		"close /up.txt to= r=" + n + " w=0 bytes=" + n + " sha=" + sha(content) + " st= mode= flags=",
		"open /up.txt to= r= w= bytes= sha= st= mode=0644 flags=read",
		"close /up.txt to= r=5 w=0 bytes=5 sha=partial st= mode= flags=",
		"rename /up.txt to=/moved.txt r= w= bytes= sha= st=ok mode= flags=",
		"mkdir /sub to= r= w= bytes= sha= st=ok mode=0750 flags=",
		"setstat /moved.txt to= r= w= bytes= sha= st=ok mode=0600 flags=",
		"rmdir /sub to= r= w= bytes= sha= st=ok mode= flags=",
		"remove /moved.txt to= r= w= bytes= sha= st=ok mode= flags=",
		"remove /moved.txt to= r= w= bytes= sha= st=no such file mode= flags=",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("sftp events:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// sftpEvents collects what a log emits.
type sftpEvents struct {
	mu sync.Mutex
	ev []map[string]string
}

func (s *sftpEvents) emit(e recording.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ev = append(s.ev, e.Fields)
}

func (s *sftpEvents) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.ev)
}

// feedSplit feeds p to f in pieces of size n.
func feedSplit(f func([]byte), p []byte, n int) {
	for len(p) > 0 {
		k := min(n, len(p))
		f(p[:k])
		p = p[k:]
	}
}

// step is one packet in a unit test: a request, or a reply if res.
type step struct {
	res bool
	p   []byte
}

func TestSFTPLogUnits(t *testing.T) {
	handle := "\x00\x00\x00\x01"
	req := func(typ byte, f ...any) step { return step{p: sftpPacket(typ, f...)} }
	res := func(typ byte, f ...any) step { return step{res: true, p: sftpPacket(typ, f...)} }
	open := []step{req(fxpOpen, uint32(1), "/f", uint32(fxfWrite|fxfCreat|fxfTrunc), uint32(0)), res(fxpHandle, uint32(1), handle)}
	closed := []step{req(fxpClose, uint32(7), handle), res(fxpStatus, uint32(7), uint32(0), "", "")}
	write := func(id uint32, off uint64, data string) step { return req(fxpWrite, id, handle, off, data) }
	seq := func(parts ...any) []step {
		var out []step
		for _, p := range parts {
			switch v := p.(type) {
			case step:
				out = append(out, v)
			case []step:
				out = append(out, v...)
			}
		}
		return out
	}
	tests := []struct {
		name  string
		steps []step
		want  string
	}{
		{"in order", seq(open, write(2, 0, "abc"), write(3, 3, "def"), closed), "sha256:" + sha("abcdef")},
		{"empty upload", seq(open, closed), "sha256:" + sha("")},
		{"gap", seq(open, write(2, 0, "abc"), write(3, 10, "def"), closed), "sha256:partial"},
		{"not from 0", seq(open, write(2, 3, "abc"), closed), "sha256:partial"},
		{"failed write", seq(open, write(2, 0, "abc"), res(fxpStatus, uint32(2), uint32(4), "", ""), closed), "sha256:partial"},
		{"not closed", seq(open, write(2, 0, "abc")), "status:not closed"},
		{"no reply", seq(req(fxpRemove, uint32(1), "/x")), "status:no reply"},
		{"oversized packet", seq(step{p: binary.BigEndian.AppendUint32(nil, sftpMaxPacket+1)}), "op:parse stopped"},
		{"field past the end", seq(req(fxpRemove, uint32(1), uint32(1000))), "op:parse stopped"},
		{"huge handle", seq(req(fxpWrite, uint32(2), strings.Repeat("h", 300), uint64(0), "x")), "op:parse stopped"},
		{"data longer than packet", seq(step{p: longData(sftpPacket(fxpWrite, uint32(2), handle, uint64(0), "abc"))}), "op:parse stopped"},
	}
	for _, tc := range tests {
		for _, split := range []int{1, 3, 1 << 20} {
			var got sftpEvents
			l := newSFTPLog(got.emit, time.Now)
			for _, st := range tc.steps {
				if st.res {
					feedSplit(l.response, st.p, split)
				} else {
					feedSplit(l.request, st.p, split)
				}
			}
			l.finish()
			if s := got.String(); !strings.Contains(s, tc.want) {
				t.Errorf("%s (pieces of %d): events %s, want %q in them", tc.name, split, s, tc.want)
			}
		}
	}
}

// longData makes a write packet's data length run past the packet.
func longData(p []byte) []byte {
	binary.BigEndian.PutUint32(p[len(p)-7:], 100) // the length before "abc"
	return p
}

// checkSFTPBounds fails if the log holds more than its caps allow.
func checkSFTPBounds(t *testing.T, l *sftpLog) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) > sftpMaxPending || len(l.handles) > sftpMaxHandles {
		t.Fatalf("log holds %d requests, %d handles", len(l.pending), len(l.handles))
	}
	for _, s := range []*sftpStream{&l.req, &l.res} {
		if cap(s.head) > 2*(sftpMaxPacket+4) {
			t.Fatalf("head buffer of %d bytes", cap(s.head))
		}
	}
}

// FuzzSFTPParser feeds arbitrary bytes both ways in arbitrary pieces: the
// log must not panic and must stay within its memory bounds.
func FuzzSFTPParser(f *testing.F) {
	h := "\x00\x00\x00\x01"
	f.Add(sftpPacket(fxpInit, uint32(3)), sftpPacket(fxpVersion, uint32(3)), uint8(7))
	f.Add(append(sftpPacket(fxpOpen, uint32(1), "/tmp/x", uint32(fxfWrite|fxfCreat|fxfTrunc), uint32(0)),
		append(sftpPacket(fxpWrite, uint32(2), h, uint64(0), "data"), sftpPacket(fxpClose, uint32(3), h)...)...),
		append(sftpPacket(fxpHandle, uint32(1), h), append(sftpPacket(fxpStatus, uint32(2), uint32(0), "", ""),
			sftpPacket(fxpStatus, uint32(3), uint32(0), "", "")...)...), uint8(1))
	f.Add(append(sftpPacket(fxpOpen, uint32(1), "/etc/passwd", uint32(fxfRead), uint32(0)), sftpPacket(fxpRead, uint32(2), h, uint64(0), uint32(100))...),
		append(sftpPacket(fxpHandle, uint32(1), h), sftpPacket(fxpData, uint32(2), "root:x:0:0")...), uint8(5))
	f.Add(sftpPacket(fxpRename, uint32(1), "/a", "/b"), sftpPacket(fxpStatus, uint32(1), uint32(0), "", ""), uint8(2))
	f.Add(sftpPacket(fxpExtended, uint32(1), "posix-rename@openssh.com", "/a", "/b"), sftpPacket(fxpExtendedReply, uint32(1)), uint8(3))
	f.Add(sftpPacket(fxpSetstat, uint32(1), "/a", uint32(0x8000000f), uint64(1), uint32(2), uint32(3), uint32(0o777), uint32(4), uint32(5), uint32(1), "k", "v"),
		[]byte{0, 0, 0, 0}, uint8(0))
	f.Fuzz(func(t *testing.T, reqs, resps []byte, split uint8) {
		l := newSFTPLog(func(recording.Event) {}, time.Now)
		n := int(split)%64 + 1
		for len(reqs) > 0 || len(resps) > 0 {
			k := min(n, len(reqs))
			l.request(reqs[:k])
			reqs = reqs[k:]
			k = min(n, len(resps))
			l.response(resps[:k])
			resps = resps[k:]
			checkSFTPBounds(t, l)
		}
		l.finish()
	})
}
