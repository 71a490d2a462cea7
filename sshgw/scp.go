package sshgw

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/gatehouse-dev/gatehouse/recording"
)

// Legacy scp (`scp -O`, or OpenSSH before 9.0) runs "scp -t PATH" (upload:
// the target is the sink) or "scp -f PATH" (download: the target is the
// source) as an exec command and speaks the rcp protocol on the channel.
// scpStream reads the source's side of it, as a copy beside the relay, and
// records each file as an scp event with its path, size and SHA-256. The
// exec command and its output are recorded as for any command, so a
// command that only looks like scp hides nothing.
const scpMaxLine = 4096 // a control line ("C0644 12 name") longer than this stops parsing

// scpStream parses the source side of one scp exec, fed by the goroutine
// relaying the source's direction; mu orders that with finish.
type scpStream struct {
	mu        sync.Mutex
	emit      func(recording.Event)
	direction string // upload or download
	base      string // the PATH of the command
	dirs      []string
	line      []byte
	left      int64     // file bytes still to come
	file      string    // the file being sent
	size      int64     // its announced size
	h         hash.Hash // its hash
	ack       bool      // the file's data is done; its closing zero byte is next
	stopped   bool
}

// newSCPStream returns a parser if command is a legacy scp sink or
// source, and whether the client is the source (an upload).
func newSCPStream(command string, emit func(recording.Event)) (*scpStream, bool) {
	args := strings.Fields(command)
	if len(args) < 2 || path.Base(args[0]) != "scp" {
		return nil, false
	}
	dir, rest := "", args[1:]
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
		a := rest[0]
		rest = rest[1:]
		if a == "--" {
			break
		}
		switch {
		case strings.ContainsRune(a, 't'):
			dir = "upload"
		case strings.ContainsRune(a, 'f'):
			dir = "download"
		}
	}
	if dir == "" || len(rest) != 1 {
		return nil, false
	}
	return &scpStream{emit: emit, direction: dir, base: rest[0]}, dir == "upload"
}

// feed parses p, the next bytes from the source.
func (s *scpStream) feed(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(p) > 0 && !s.stopped {
		switch {
		case s.left > 0:
			n := int(min(s.left, int64(len(p))))
			s.h.Write(p[:n])
			s.left -= int64(n)
			p = p[n:]
			if s.left == 0 {
				s.ack = true
			}
		case s.ack:
			s.ack = false
			if p[0] != 0 {
				s.fileDone("error")
				s.stop("source reported an error after a file")
				return
			}
			s.fileDone("")
			p = p[1:]
		default:
			i := strings.IndexByte(string(p), '\n')
			if i < 0 {
				if len(s.line)+len(p) > scpMaxLine {
					s.stop("control line too long")
					return
				}
				s.line = append(s.line, p...)
				return
			}
			if len(s.line)+i > scpMaxLine {
				s.stop("control line too long")
				return
			}
			s.line = append(s.line, p[:i]...)
			p = p[i+1:]
			s.control(string(s.line))
			s.line = s.line[:0]
		}
	}
}

// control acts on one control line from the source.
func (s *scpStream) control(line string) {
	if line == "" {
		s.stop("empty control line")
		return
	}
	switch line[0] {
	case 'C', 'D':
		f := strings.SplitN(line[1:], " ", 3)
		if len(f) != 3 || f[2] == "" || strings.Contains(f[2], "/") {
			s.stop("malformed " + line[:1] + " line")
			return
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			s.stop("malformed size")
			return
		}
		if line[0] == 'D' {
			s.dirs = append(s.dirs, f[2])
			return
		}
		s.file, s.size, s.left, s.h = s.pathOf(f[2]), size, size, sha256.New()
		if size == 0 {
			s.ack = true
		}
	case 'E':
		if len(s.dirs) == 0 {
			s.stop("E line outside a directory")
			return
		}
		s.dirs = s.dirs[:len(s.dirs)-1]
	case 'T', '\x01', '\x02':
		// Times, and warnings or errors the source reports: nothing moved.
	default:
		s.stop("unknown control line")
	}
}

// pathOf is where a file named name in a C line goes (upload) or comes
// from (download). Without directories, a single file's path is the
// command's PATH, which may also be the directory it goes into: the event
// then says both.
func (s *scpStream) pathOf(name string) string {
	if len(s.dirs) == 0 {
		if s.direction == "download" || path.Base(s.base) == name {
			return s.base
		}
		return s.base + " (" + name + ")"
	}
	// Recursive: an upload's directories go into PATH; a download's first
	// directory is PATH itself.
	root := s.base
	if s.direction == "download" {
		root = path.Dir(s.base)
	}
	return path.Join(append(append([]string{root}, s.dirs...), name)...)
}

// fileDone records the file just sent.
func (s *scpStream) fileDone(status string) {
	f := map[string]string{"direction": s.direction, "path": sanitize(s.file), "bytes": strconv.FormatInt(s.size-s.left, 10)}
	switch {
	case status != "" || s.left > 0:
		f["sha256"] = "partial"
	default:
		f["sha256"] = hex.EncodeToString(s.h.Sum(nil))
	}
	if status != "" {
		f["status"] = status
	}
	s.emit(recording.Event{Type: recording.EventSCP, Fields: f})
	s.file, s.h = "", nil
}

// finish records a file cut off by the end of the session.
func (s *scpStream) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	if s.h != nil {
		s.fileDone("incomplete")
	}
	s.stopped = true
}

func (s *scpStream) stop(why string) {
	s.stopped = true
	s.emit(recording.Event{Type: recording.EventSCP, Fields: map[string]string{"op": "parse stopped", "reason": why}})
}
