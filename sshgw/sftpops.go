package sshgw

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// errShort is a packet field that runs past the packet.
var errShort = errors.New("field past the end of the packet")

// wire reads SSH wire-format fields (RFC 4251 5) from a packet body.
type wire struct {
	b   []byte
	err error
}

func (w *wire) u32() uint32 {
	if w.err != nil || len(w.b) < 4 {
		w.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint32(w.b)
	w.b = w.b[4:]
	return v
}

func (w *wire) u64() uint64 {
	if w.err != nil || len(w.b) < 8 {
		w.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint64(w.b)
	w.b = w.b[8:]
	return v
}

func (w *wire) bytes() []byte {
	n := w.u32()
	if w.err != nil || uint64(n) > uint64(len(w.b)) {
		w.err = errShort
		return nil
	}
	v := w.b[:n]
	w.b = w.b[n:]
	return v
}

// path reads a string kept in an event: shortened and made printable.
func (w *wire) path() string {
	b := w.bytes()
	if len(b) > sftpMaxPath {
		return sanitize(string(b[:sftpMaxPath])) + "..."
	}
	return sanitize(string(b))
}

// attrs reads an SFTP ATTRS structure into event fields (what a setstat,
// mkdir or open sets).
func (w *wire) attrs(f map[string]string) {
	const (
		attrSize     = 0x01
		attrUIDGID   = 0x02
		attrPerms    = 0x04
		attrACModTim = 0x08
		attrExtended = 0x80000000
	)
	flags := w.u32()
	if flags&attrSize != 0 {
		f["size"] = strconv.FormatUint(w.u64(), 10)
	}
	if flags&attrUIDGID != 0 {
		f["uid"] = strconv.FormatUint(uint64(w.u32()), 10)
		f["gid"] = strconv.FormatUint(uint64(w.u32()), 10)
	}
	if flags&attrPerms != 0 {
		f["mode"] = "0" + strconv.FormatUint(uint64(w.u32()&0o7777), 8)
	}
	if flags&attrACModTim != 0 {
		w.u32() // atime
		f["mtime"] = strconv.FormatUint(uint64(w.u32()), 10)
	}
	if flags&attrExtended != 0 {
		for n := w.u32(); n > 0 && w.err == nil; n-- {
			w.bytes()
			w.bytes()
		}
	}
}

// readOnlyExtensions are OpenSSH extensions that change nothing; they are
// not recorded.
var readOnlyExtensions = map[string]bool{
	"statvfs@openssh.com": true, "fstatvfs@openssh.com": true, "limits@openssh.com": true,
	"expand-path@openssh.com": true, "home-directory": true, "users-groups-by-id@openssh.com": true,
	"fsync@openssh.com": true,
}

// handle acts on a whole packet of type typ (body starts at the request
// ID); mu is held.
func (s *sftpStream) handle(typ byte, body []byte) {
	l := s.l
	w := &wire{b: body}
	id := w.u32()
	if s.response {
		s.handleResponse(typ, id, w)
	} else {
		s.handleRequest(typ, id, w)
	}
	if w.err != nil {
		l.stop("malformed packet of type " + strconv.Itoa(int(typ)))
	}
}

func (s *sftpStream) handleRequest(typ byte, id uint32, w *wire) {
	l := s.l
	var r *sftpReq
	switch typ {
	case fxpOpen:
		r = &sftpReq{op: "open", path: w.path(), fields: map[string]string{}}
		r.flags = w.u32()
		w.attrs(r.fields)
		r.fields["flags"] = openFlags(r.flags)
	case fxpOpendir:
		r = &sftpReq{op: "opendir", path: w.path()}
	case fxpClose:
		r = &sftpReq{op: "close", handle: string(w.bytes())}
	case fxpRead:
		r = &sftpReq{op: "read", handle: string(w.bytes())}
		r.offset = w.u64()
	case fxpSetstat, fxpMkdir:
		r = &sftpReq{op: "setstat", path: w.path(), fields: map[string]string{}}
		if typ == fxpMkdir {
			r.op = "mkdir"
		}
		w.attrs(r.fields)
	case fxpFsetstat:
		r = &sftpReq{op: "setstat", fields: map[string]string{}}
		if f := l.handles[string(w.bytes())]; f != nil {
			r.path = f.path
		}
		w.attrs(r.fields)
	case fxpRemove, fxpRmdir:
		r = &sftpReq{op: "remove", path: w.path()}
		if typ == fxpRmdir {
			r.op = "rmdir"
		}
	case fxpRename:
		r = &sftpReq{op: "rename", path: w.path(), to: w.path()}
	case fxpSymlink:
		// OpenSSH sends (target, link), reversed from the draft; both are
		// kept in the order sent.
		r = &sftpReq{op: "symlink", path: w.path(), to: w.path()}
	case fxpExtended:
		r = extendedRequest(w)
	}
	if r != nil && w.err == nil {
		l.track(id, r)
	}
}

// extendedRequest reads an SSH_FXP_EXTENDED request; nil if it changes
// nothing.
func extendedRequest(w *wire) *sftpReq {
	name := string(w.bytes())
	switch name {
	case "posix-rename@openssh.com":
		return &sftpReq{op: "rename", path: w.path(), to: w.path()}
	case "hardlink@openssh.com":
		return &sftpReq{op: "link", path: w.path(), to: w.path()}
	case "lsetstat@openssh.com":
		r := &sftpReq{op: "setstat", path: w.path(), fields: map[string]string{}}
		w.attrs(r.fields)
		return r
	}
	if readOnlyExtensions[name] {
		return nil
	}
	w.b = nil // the rest is the extension's own
	return &sftpReq{op: "extended", fields: map[string]string{"name": sanitize(name)}}
}

func (s *sftpStream) handleResponse(typ byte, id uint32, w *wire) {
	l := s.l
	r := l.pending[id]
	delete(l.pending, id)
	switch typ {
	case fxpHandle:
		h := string(w.bytes())
		if r == nil || w.err != nil {
			return
		}
		switch r.op {
		case "open":
			if len(l.handles) >= sftpMaxHandles {
				l.stop("too many open handles")
				return
			}
			f := &sftpFile{path: r.path, flags: r.flags, rHash: sha256.New(), wHash: sha256.New()}
			l.handles[h] = f
			l.send(l.event(r))
		case "opendir":
			l.send(l.event(r))
		}
	case fxpStatus:
		code := w.u32()
		if r == nil || w.err != nil {
			return
		}
		w.b = nil // message and language tag are not needed
		s.status(r, code)
	}
}

// status acts on the status reply to r.
func (s *sftpStream) status(r *sftpReq, code uint32) {
	l := s.l
	switch r.op {
	case "read":
		if f := l.handles[r.handle]; f != nil && code == fxEOF && r.offset == f.rNext {
			f.rEOF = true
		}
	case "write":
		if f := l.handles[r.handle]; f != nil && code != fxOK {
			f.wHash = nil // the file does not hold what passed
		}
	case "close":
		f := l.handles[r.handle]
		if f == nil {
			return // a directory's handle
		}
		delete(l.handles, r.handle)
		fields := f.closeFields()
		if code != fxOK {
			fields["status"] = statusName(code)
		}
		l.send(fields)
	default:
		f := l.event(r)
		f["status"] = statusName(code)
		l.send(f)
	}
}

// event returns the fields of the event for r, or nil for requests that
// only feed a handle's counts.
func (l *sftpLog) event(r *sftpReq) map[string]string {
	switch r.op {
	case "read", "write", "close":
		return nil
	}
	f := map[string]string{"op": r.op}
	for k, v := range r.fields {
		f[k] = v
	}
	if r.path != "" {
		f["path"] = r.path
	}
	if r.to != "" {
		f["to"] = r.to
	}
	return f
}

// moved counts n bytes read or written at offset; a hash survives only
// while the handle moves the file in order from its start.
func (f *sftpFile) moved(write bool, offset uint64, n int) {
	if write {
		f.written += int64(n)
		if offset != f.wNext {
			f.wHash = nil
		}
		f.wNext = offset + uint64(n)
		return
	}
	f.read += int64(n)
	if offset != f.rNext {
		f.rHash = nil
	}
	f.rNext = offset + uint64(n)
}

// closeFields is the close event of f: path, bytes each way and the
// SHA-256 of the whole file when the handle moved it whole, in order, one
// way: written from offset 0 into a file the open truncated or created
// new, or read from offset 0 up to its end. Otherwise "partial".
func (f *sftpFile) closeFields() map[string]string {
	fields := map[string]string{"op": "close", "path": f.path,
		"bytes_read": strconv.FormatInt(f.read, 10), "bytes_written": strconv.FormatInt(f.written, 10)}
	whole := func(h interface{ Sum([]byte) []byte }) string { return hex.EncodeToString(h.Sum(nil)) }
	fresh := f.flags&fxfWrite != 0 && f.flags&(fxfTrunc|fxfExcl) != 0 && f.flags&fxfAppend == 0
	switch {
	case f.read > 0 && f.written > 0:
		fields["sha256"] = "partial"
	case f.written > 0 || (fresh && f.read == 0):
		fields["bytes"] = fields["bytes_written"]
		if f.wHash != nil && fresh {
			fields["sha256"] = whole(f.wHash)
		} else {
			fields["sha256"] = "partial"
		}
	case f.read > 0 || f.rEOF:
		fields["bytes"] = fields["bytes_read"]
		if f.rHash != nil && f.rEOF {
			fields["sha256"] = whole(f.rHash)
		} else {
			fields["sha256"] = "partial"
		}
	}
	return fields
}

// openFlags names SFTP open flags.
func openFlags(fl uint32) string {
	var names []string
	for _, n := range []struct {
		bit  uint32
		name string
	}{{fxfRead, "read"}, {fxfWrite, "write"}, {fxfAppend, "append"}, {fxfCreat, "create"}, {fxfTrunc, "truncate"}, {fxfExcl, "exclusive"}} {
		if fl&n.bit != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

func statusName(code uint32) string {
	if int(code) < len(fxStatusNames) {
		return fxStatusNames[code]
	}
	return "status " + strconv.FormatUint(uint64(code), 10)
}
