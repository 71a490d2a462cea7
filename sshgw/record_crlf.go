package sshgw

import (
	"bytes"
	"sync"
)

// crlfState turns the bare line feeds of output written without a pty into
// "\r\n" before it is recorded, as the person's terminal displayed them. A
// nil *crlfState records p unchanged.
type crlfState struct {
	mu     sync.Mutex // stdout and stderr are relayed by two goroutines
	lastCR bool       // the last byte recorded was '\r'
	buf    []byte
}

// output records p through w, converted.
func (s *crlfState) output(w SessionRecording, p []byte) error {
	if s == nil || len(p) == 0 {
		return w.Output(p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.IndexByte(p, '\n') < 0 {
		s.lastCR = p[len(p)-1] == '\r'
		return w.Output(p)
	}
	s.buf = toCRLF(s.buf[:0], p, s.lastCR)
	s.lastCR = p[len(p)-1] == '\r'
	err := w.Output(s.buf)
	if cap(s.buf) > 64<<10 {
		s.buf = nil // one large write must not pin its buffer for the session
	}
	return err
}

// toCRLF appends p to dst with every "\n" not already preceded by '\r'
// (prevCR says whether the byte before p was one) written as "\r\n".
func toCRLF(dst, p []byte, prevCR bool) []byte {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return append(dst, p...)
		}
		dst = append(dst, p[:i]...)
		before := prevCR
		if i > 0 {
			before = p[i-1] == '\r'
		}
		if !before {
			dst = append(dst, '\r')
		}
		dst = append(dst, '\n')
		p, prevCR = p[i+1:], false
	}
	return dst
}
