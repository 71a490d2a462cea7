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
	"strings"

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

// Playable verifies recording id as playback needs and returns its status
// (StatusComplete, StatusLive or StatusIncomplete), so a console can label
// an unsealed one "incomplete — not sealed". A recording the index says is
// complete must verify fully (seal, signature, chain, IDs); a live or
// incomplete one must chain from its header and name its own ID in every
// chunk there is. Anything else is an error wrapping ErrTampered that names
// the problem.
func (r *Recorder) Playable(ctx context.Context, id string) (string, error) {
	_, status, err := r.playable(ctx, id)
	return status, err
}

// playable is Playable, also returning what the read that follows must
// find again.
func (r *Recorder) playable(ctx context.Context, id string) (*verified, string, error) {
	rep, v, err := r.verify(ctx, id)
	if err != nil {
		return nil, "", err
	}
	sealedInIndex := v.indexed && v.meta.Status == StatusComplete
	switch {
	case len(v.damage) > 0:
		return nil, "", fmt.Errorf("%w: %s", ErrTampered, strings.Join(v.damage, "; "))
	case sealedInIndex && !rep.Complete:
		return nil, "", fmt.Errorf("%w: %s", ErrTampered, strings.Join(rep.Problems, "; "))
	case rep.Complete:
		return v, StatusComplete, nil
	case v.meta.Status == StatusLive:
		return v, StatusLive, nil
	}
	return v, StatusIncomplete, nil
}

// chunks verifies recording id (playable), then calls fn with the
// plaintext of each chunk it verified, in order. The read checks every
// chunk against the hash chain again and must end at the chain verify saw,
// so a file changed between the two reads is refused rather than shown;
// a live recording's chunks written since are left for the next read.
func (r *Recorder) chunks(ctx context.Context, id string, fn func(i int, plain []byte) error) error {
	v, _, err := r.playable(ctx, id)
	if err != nil {
		return err
	}
	f, s, err := r.open(id)
	if err != nil {
		return err
	}
	defer f.Close()
	if s.hdr.id != id {
		return fmt.Errorf("%w: file belongs to recording %s", ErrTampered, s.hdr.id)
	}
	chain := s.hdrHash
	for i := 1; i <= v.chunks; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := s.next()
		if err != nil {
			return fmt.Errorf("%w: after chunk %d: changed while being read: %v", ErrTampered, i-1, err)
		}
		c, ok := rec.(*chunkRec)
		if !ok {
			return fmt.Errorf("%w: chunk %d: changed while being read", ErrTampered, i)
		}
		chain = chainNext(chain, c.ct, uint32(i))
		if c.index != uint32(i) || c.chain != chain {
			return fmt.Errorf("%w: chunk %d: hash chain broken", ErrTampered, i)
		}
		if i == v.chunks && chain != v.chain {
			return fmt.Errorf("%w: chunk %d: changed while being read", ErrTampered, i)
		}
		plain, err := r.decrypt(c.ct)
		if err != nil {
			return fmt.Errorf("%w: chunk %d: cannot be decrypted: %v", ErrTampered, i, err)
		}
		if err := fn(i, plain); err != nil {
			return err
		}
	}
	return nil
}

// Cast writes the recording as a plain asciicast v2 file (what `recordings
// export` writes and the browser player loads): the header line, then the
// output, resize and marker events. It verifies the recording first (see
// Playable) and writes nothing if that fails. An incomplete recording is
// readable up to its last flush.
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

// Events returns the structured events of a recording, in order, after
// verifying it as Cast does.
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
