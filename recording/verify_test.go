package recording

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recordChunks writes a sealed recording with n output chunks (plus the
// header chunk) and returns its ID.
func recordChunks(t *testing.T, e *env, n int) string {
	t.Helper()
	w, err := e.rec.Start(t.Context(), testMeta())
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		must(t, w.Output([]byte(strings.Repeat("line ", 10)+string(rune('a'+i))+"\r\n")))
		must(t, w.flush(true))
	}
	must(t, w.Close("normal"))
	return w.ID()
}

// span is one record's byte range in a file.
type span struct{ start, end int }

// layout returns the header's end, the chunk records and the seal record
// of a recording file.
func layout(t *testing.T, b []byte) (int, []span, *span) {
	t.Helper()
	off := len(magic) + 2 + int(b[len(magic)+1]) + hashLen
	hdrEnd := off
	var chunks []span
	var sl *span
	for off < len(b) {
		switch b[off] {
		case tagChunk:
			n := int(binary.BigEndian.Uint32(b[off+5:]))
			end := off + 9 + n + hashLen
			chunks = append(chunks, span{off, end})
			off = end
		case tagSeal:
			sl = &span{off, off + sealLen}
			off += sealLen
		default:
			t.Fatalf("bad record at %d", off)
		}
	}
	return hdrEnd, chunks, sl
}

func problems(t *testing.T, e *env, id string) *Report {
	t.Helper()
	rep, err := e.rec.Verify(t.Context(), id)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func wantProblem(t *testing.T, rep *Report, want string) {
	t.Helper()
	if rep.OK || rep.Complete {
		t.Errorf("report OK=%v Complete=%v, want both false", rep.OK, rep.Complete)
	}
	for _, p := range rep.Problems {
		if strings.Contains(p, want) {
			return
		}
	}
	t.Errorf("problems = %q, want one containing %q", rep.Problems, want)
}

// TestVerifyDetectsEveryFlippedBit flips one bit at many offsets (every
// byte of the header and seal, a sample of the chunks) and expects Verify
// to fail each time.
func TestVerifyDetectsEveryFlippedBit(t *testing.T) {
	e := newEnv(t, nil)
	id := recordChunks(t, e, 3)
	path := e.rec.path(id)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep := problems(t, e, id); !rep.OK || !rep.Complete || rep.Chunks != 4 {
		t.Fatalf("intact recording: %+v", rep)
	}
	for off := 0; off < len(orig); off++ {
		if off > 64 && off < len(orig)-sealLen && off%7 != 0 {
			continue // sample the chunk bodies
		}
		b := bytes.Clone(orig)
		b[off] ^= 0x10
		must(t, os.WriteFile(path, b, 0o600))
		if rep, err := e.rec.Verify(t.Context(), id); err == nil && rep.OK {
			t.Fatalf("flipped bit at offset %d of %d not detected", off, len(orig))
		}
	}
	// One named problem per kind of damage.
	_, chunks, sl := layout(t, orig)
	b := bytes.Clone(orig)
	b[chunks[2].start+20] ^= 1 // inside chunk 3's ciphertext
	must(t, os.WriteFile(path, b, 0o600))
	wantProblem(t, problems(t, e, id), "chunk 3: hash chain broken")
	b = bytes.Clone(orig)
	b[sl.end-1] ^= 1 // the signature
	must(t, os.WriteFile(path, b, 0o600))
	wantProblem(t, problems(t, e, id), "seal: signature invalid")
}

func TestVerifyTruncation(t *testing.T) {
	e := newEnv(t, nil)
	id := recordChunks(t, e, 3)
	path := e.rec.path(id)
	orig, _ := os.ReadFile(path)
	_, chunks, sl := layout(t, orig)
	for _, tc := range []struct {
		name string
		size int
		want string
	}{
		{"seal removed", sl.start, "truncated after chunk 4: the seal is missing"},
		{"inside the seal", sl.start + 10, "truncated after chunk 4"},
		{"inside chunk 3", chunks[2].start + 30, "incomplete, truncated after chunk 2"},
		{"after chunk 2", chunks[2].start, "truncated after chunk 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, os.WriteFile(path, orig[:tc.size], 0o600))
			wantProblem(t, problems(t, e, id), tc.want)
		})
	}
}

func TestVerifyReorderedChunks(t *testing.T) {
	e := newEnv(t, nil)
	id := recordChunks(t, e, 3)
	path := e.rec.path(id)
	orig, _ := os.ReadFile(path)
	hdrEnd, c, _ := layout(t, orig)
	var b []byte
	b = append(b, orig[:hdrEnd]...)
	b = append(b, orig[c[0].start:c[0].end]...)
	b = append(b, orig[c[2].start:c[2].end]...) // 3 before 2
	b = append(b, orig[c[1].start:c[1].end]...)
	b = append(b, orig[c[3].start:]...)
	must(t, os.WriteFile(path, b, 0o600))
	rep := problems(t, e, id)
	wantProblem(t, rep, "chunk 3: out of order (found at position 2)")
	wantProblem(t, rep, "seal: the hash chain it signs does not match")
}

// TestVerifySwappedFile copies another recording's file over this one.
func TestVerifySwappedFile(t *testing.T) {
	e := newEnv(t, nil)
	a := recordChunks(t, e, 1)
	b := recordChunks(t, e, 1)
	data, _ := os.ReadFile(e.rec.path(b))
	must(t, os.WriteFile(e.rec.path(a), data, 0o600))
	rep := problems(t, e, a)
	wantProblem(t, rep, "file belongs to recording "+b)
	wantProblem(t, rep, "differs from the one in the index")
}

// TestVerifyOtherKey: a recording sealed by another deployment's key (its
// file copied here, index entry included) fails on the signature.
func TestVerifyOtherKey(t *testing.T) {
	other := newEnv(t, nil)
	id := recordChunks(t, other, 1)
	m, err := other.rec.Get(t.Context(), id)
	must(t, err)
	e := newEnv(t, nil)
	data, _ := os.ReadFile(other.rec.path(id))
	must(t, os.WriteFile(e.rec.path(id), data, 0o600))
	must(t, e.rec.putMeta(t.Context(), m))
	rep := problems(t, e, id)
	wantProblem(t, rep, "seal: signature invalid")
	wantProblem(t, rep, "chunk 1: cannot be decrypted")
}

func TestVerifyMissing(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.rec.Verify(t.Context(), "nope"); err != ErrNotFound {
		t.Errorf("Verify(unknown) = %v, want ErrNotFound", err)
	}
	id := recordChunks(t, e, 1)
	must(t, os.Remove(filepath.Join(e.rec.cfg.Dir, id+fileExt)))
	wantProblem(t, problems(t, e, id), "file missing")
}
