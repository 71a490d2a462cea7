package recording

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxProblems bounds a report, so a thoroughly damaged file gives a
// readable one.
const maxProblems = 20

// Verify checks a recording's file against its hash chain, its seal, the
// deployment's sealing key and the index, and names each problem: a flipped
// bit (hash chain broken, or age authentication failure), truncation, a
// reordered chunk, a file swapped in from another recording, a seal signed
// by another key. ErrNotFound if neither file nor index entry exists.
func (r *Recorder) Verify(ctx context.Context, id string) (*Report, error) {
	rep, _, err := r.verify(ctx, id)
	return rep, err
}

// verified is what verify learnt beyond the report: which problems mean
// damage or tampering (rather than a file the writer has not finished), and
// the chain the chunks it read end at, so a later read can check it reads
// the same chunks.
type verified struct {
	meta    Meta
	indexed bool
	damage  []string // problems other than "not finished"
	chunks  int
	chain   [hashLen]byte
}

// verify is Verify, also returning what playback needs to decide whether
// the file may be shown.
func (r *Recorder) verify(ctx context.Context, id string) (*Report, *verified, error) {
	rep, v := &Report{ID: id}, &verified{}
	add := func(format string, a ...any) {
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, a...))
		}
	}
	bad := func(format string, a ...any) {
		add(format, a...)
		if len(v.damage) < maxProblems {
			v.damage = append(v.damage, fmt.Sprintf(format, a...))
		}
	}
	m, merr := r.Get(ctx, id)
	if merr != nil && !errors.Is(merr, ErrNotFound) {
		return nil, nil, merr
	}
	indexed := merr == nil
	v.meta, v.indexed = m, indexed
	f, s, err := r.open(id)
	switch {
	case errors.Is(err, ErrNotFound) && !indexed:
		return nil, nil, ErrNotFound
	case errors.Is(err, ErrNotFound):
		bad("file missing (the index lists the recording)")
		return rep, v, nil
	case err != nil:
		bad("file unreadable: %v", err)
		return rep, v, nil
	}
	defer f.Close()
	if !indexed {
		bad("not in the index")
	}
	if s.hdr.id != id {
		bad("file belongs to recording %s", s.hdr.id)
	}
	computed, stored := s.hdrHash, s.hdrHash
	intact, ended := true, false
	var sl *seal
	n := 0
	for !ended {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		rec, err := s.next()
		switch {
		case err == io.EOF:
			ended = true
			continue
		case errors.Is(err, errTruncated):
			if !(indexed && m.Status == StatusLive) {
				add("incomplete, truncated after chunk %d (a partial record follows)", n)
			}
			intact, ended = false, true
			continue
		case err != nil:
			bad("after chunk %d: %v", n, err)
			intact, ended = false, true
			continue
		}
		switch rec := rec.(type) {
		case *seal:
			if sl != nil {
				bad("a second seal after chunk %d", n)
				intact = false
			}
			sl = rec
		case *chunkRec:
			n++
			if sl != nil {
				bad("chunk %d: found after the seal", n)
				intact = false
			}
			if rec.index != uint32(n) {
				bad("chunk %d: out of order (found at position %d)", rec.index, n)
				intact = false
			}
			computed = chainNext(computed, rec.ct, uint32(n))
			if chainNext(stored, rec.ct, uint32(n)) != rec.chain {
				bad("chunk %d: hash chain broken (content changed, removed or reordered)", n)
				intact = false
			}
			stored = rec.chain
			if n == 1 && sha256.Sum256(rec.ct) != s.hdr.metaHash {
				bad("chunk 1: does not match the header's metadata hash")
				intact = false
			}
			plain, err := r.decrypt(rec.ct)
			if err != nil {
				bad("chunk %d: cannot be decrypted (%v)", n, err)
				intact = false
			} else if n == 1 {
				if hid := headerID(plain); hid != id {
					bad("chunk 1: the asciicast header names recording %q", hid)
					intact = false
				}
			}
		}
	}
	rep.Chunks = n
	if sl == nil {
		switch {
		case indexed && m.Status == StatusLive:
			// Still being written: nothing to seal yet.
		case indexed && m.Status == StatusComplete:
			bad("truncated after chunk %d: the seal is missing, but the index says the recording was sealed", n)
		case intact:
			add("incomplete: not sealed (the writer stopped); readable and chained through chunk %d", n)
		default:
			add("incomplete: not sealed")
		}
	} else {
		r.checkSeal(s.hdr, sl, computed, n, m, indexed, bad)
		rep.Complete = true
	}
	rep.OK = len(rep.Problems) == 0
	rep.Complete = rep.Complete && rep.OK
	v.chunks, v.chain = n, computed
	return rep, v, nil
}

// checkSeal checks the seal against the chunks, the sealing key and the
// index.
func (r *Recorder) checkSeal(h header, sl *seal, computed [hashLen]byte, n int, m Meta, indexed bool, add func(string, ...any)) {
	if int(sl.n) != n {
		add("seal: covers %d chunks, the file has %d", sl.n, n)
	}
	if sl.chain != computed {
		add("seal: the hash chain it signs does not match the chunks")
	}
	if !ed25519.Verify(r.keys.sealPublic(), sealMessage(h.id, h.metaHash, sl.chain, sl.n, sl.end), sl.sig) {
		add("seal: signature invalid (not signed by this deployment's key, or the seal was changed)")
	}
	sum := sha256.Sum256(sl.raw)
	if got := hex.EncodeToString(sum[:]); indexed && m.Seal != "" && got != m.Seal {
		add("seal: hash %s differs from the one in the index (%s)", got, m.Seal)
	}
}

// headerID returns the recording ID that chunk 1's asciicast header names.
func headerID(plain []byte) string {
	line, _, _ := bytes.Cut(plain, []byte("\n"))
	var h struct {
		Gatehouse struct {
			ID string `json:"id"`
		} `json:"gatehouse"`
	}
	if json.Unmarshal(line, &h) != nil {
		return ""
	}
	return h.Gatehouse.ID
}
