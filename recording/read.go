package recording

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"filippo.io/age"
)

// open opens the file of recording id and reads its header.
func (r *Recorder) open(id string) (*os.File, *scanner, error) {
	if !validID(id) {
		return nil, nil, ErrNotFound
	}
	f, err := os.Open(r.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("recording: %w", err)
	}
	s, err := newScanner(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("recording %s: %w", id, err)
	}
	return f, s, nil
}

// decrypt decrypts one chunk with the deployment's recording key.
func (r *Recorder) decrypt(ct []byte) ([]byte, error) {
	d, err := age.Decrypt(bytes.NewReader(ct), r.keys.identity)
	if err != nil {
		return nil, err
	}
	// The plaintext is never longer than the ciphertext, itself capped.
	return io.ReadAll(io.LimitReader(d, maxChunk))
}

// chunks calls fn with the plaintext of every chunk of recording id, in
// order, after checking each against the hash chain. A file that ends
// inside a chunk (a crash mid-write, or a live recording) ends the walk
// without error: everything before it is returned. Any other problem is an
// error wrapping ErrTampered; `recordings verify` names it.
func (r *Recorder) chunks(ctx context.Context, id string, fn func(i int, plain []byte) error) error {
	f, s, err := r.open(id)
	if err != nil {
		return err
	}
	defer f.Close()
	if s.hdr.id != id {
		return fmt.Errorf("%w: file belongs to recording %s", ErrTampered, s.hdr.id)
	}
	chain := s.hdrHash
	for i := 1; ; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := s.next()
		if err == io.EOF || errors.Is(err, errTruncated) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: after chunk %d: %v", ErrTampered, i-1, err)
		}
		c, ok := rec.(*chunkRec)
		if !ok {
			return nil // the seal; Verify checks it
		}
		chain = chainNext(chain, c.ct, uint32(i))
		if c.index != uint32(i) || c.chain != chain {
			return fmt.Errorf("%w: chunk %d: hash chain broken", ErrTampered, i)
		}
		plain, err := r.decrypt(c.ct)
		if err != nil {
			return fmt.Errorf("%w: chunk %d: cannot be decrypted: %v", ErrTampered, i, err)
		}
		if err := fn(i, plain); err != nil {
			return err
		}
	}
}

// Cast writes the recording as a plain asciicast v2 file (what `recordings
// export` writes and the browser player loads): the header line, then the
// output, resize and marker events. An incomplete recording is readable up
// to its last flush.
func (r *Recorder) Cast(ctx context.Context, id string, w io.Writer) error {
	return r.chunks(ctx, id, func(i int, plain []byte) error {
		for line := range bytes.Lines(plain) {
			if kind := lineKind(line); kind == lineHeader && i == 1 || kind == lineCast {
				if _, err := w.Write(line); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Events returns the structured events of a recording, in order.
func (r *Recorder) Events(ctx context.Context, id string) ([]Event, error) {
	var out []Event
	err := r.chunks(ctx, id, func(_ int, plain []byte) error {
		for line := range bytes.Lines(plain) {
			if lineKind(line) != lineEvent {
				continue
			}
			var el eventLine
			if err := json.Unmarshal(line, &el); err != nil || el.Event == nil {
				return fmt.Errorf("%w: unreadable event line", ErrTampered)
			}
			out = append(out, *el.Event)
		}
		return nil
	})
	return out, err
}

// Kinds of chunk line.
const (
	lineOther  = iota
	lineHeader // the asciicast header object
	lineCast   // an asciicast event array
	lineEvent  // {"gatehouse_event": ...}
)

// lineKind tells the lines of a chunk apart by their first bytes.
func lineKind(line []byte) int {
	l := bytes.TrimLeft(line, " \t")
	switch {
	case len(l) == 0:
		return lineOther
	case l[0] == '[':
		return lineCast
	case bytes.HasPrefix(l, []byte(`{"gatehouse_event"`)):
		return lineEvent
	case l[0] == '{':
		return lineHeader
	}
	return lineOther
}
