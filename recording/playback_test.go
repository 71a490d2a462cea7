package recording

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"strings"
	"testing"
)

// chunkCTs returns the ciphertexts of the chunks of recording id's file.
func chunkCTs(t *testing.T, e *env, id string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(e.rec.path(id))
	must(t, err)
	_, chunks, _ := layout(t, b)
	var out [][]byte
	for _, c := range chunks {
		n := c.end - hashLen
		out = append(out, append([]byte(nil), b[c.start+9:n]...))
	}
	return out
}

// forge writes a file for recording id made of cts, with a header whose
// metadata hash matches cts[0], the unkeyed hash chain recomputed and no
// seal: what anyone who can write the directory can make without the keys.
func forge(t *testing.T, e *env, id string, cts [][]byte) {
	t.Helper()
	hb := header{id: id, metaHash: sha256.Sum256(cts[0])}.marshal()
	out := append([]byte(nil), hb...)
	chain := sha256.Sum256(hb)
	for i, ct := range cts {
		chain = chainNext(chain, ct, uint32(i+1))
		out = append(out, marshalChunk(uint32(i+1), ct, chain)...)
	}
	must(t, os.WriteFile(e.rec.path(id), out, 0o600))
}

// wantRefused expects Cast and Events both to fail with ErrTampered, and
// Cast to write nothing.
func wantRefused(t *testing.T, e *env, id, want string) {
	t.Helper()
	var b bytes.Buffer
	err := e.rec.Cast(t.Context(), id, &b)
	if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), want) {
		t.Errorf("Cast err = %v, want ErrTampered naming %q", err, want)
	}
	if b.Len() != 0 {
		t.Errorf("Cast wrote %d bytes of a recording that fails verification", b.Len())
	}
	if evs, err := e.rec.Events(t.Context(), id); !errors.Is(err, ErrTampered) || len(evs) != 0 {
		t.Errorf("Events = %d events, %v; want none and ErrTampered", len(evs), err)
	}
	if _, err := e.rec.Playable(t.Context(), id); !errors.Is(err, ErrTampered) {
		t.Errorf("Playable err = %v, want ErrTampered", err)
	}
}

// TestPlaybackRefusesForgedComplete: a recording the index says is sealed
// plays only if it verifies; a chunk cut out (chain recomputed, seal
// dropped), a truncation at a record boundary, and another recording's
// chunks under this one's header are all refused.
func TestPlaybackRefusesForgedComplete(t *testing.T) {
	e := newEnv(t, nil)
	a := recordChunks(t, e, 3)
	b := recordChunks(t, e, 1)
	ctsA, ctsB := chunkCTs(t, e, a), chunkCTs(t, e, b)
	if len(ctsA) != 4 {
		t.Fatalf("recording has %d chunks, want 4", len(ctsA))
	}
	if got, err := e.rec.Playable(t.Context(), a); err != nil || got != StatusComplete {
		t.Fatalf("untouched: Playable = %q, %v; want complete", got, err)
	}
	if !strings.Contains(e.cast(t, a), "line line") {
		t.Fatal("untouched recording: output missing from the cast")
	}
	t.Run("chunk removed", func(t *testing.T) {
		forge(t, e, a, [][]byte{ctsA[0], ctsA[1], ctsA[3]})
		wantRefused(t, e, a, "the seal is missing")
	})
	t.Run("truncated at a record boundary", func(t *testing.T) {
		forge(t, e, a, ctsA[:2])
		wantRefused(t, e, a, "the seal is missing")
	})
	t.Run("another recording's chunks", func(t *testing.T) {
		forge(t, e, a, ctsB)
		wantRefused(t, e, a, "header names recording")
	})
}

// TestPlaybackIncomplete: a recording whose writer stopped without sealing
// plays up to its last flush and reports itself incomplete; the same file
// with another recording's chunks in it does not play.
func TestPlaybackIncomplete(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	w, err := e.rec.Start(ctx, testMeta())
	must(t, err)
	must(t, w.Output([]byte("before the crash\r\n")))
	must(t, w.flush(true))
	id := w.ID()
	if got, err := e.rec.Playable(ctx, id); err != nil || got != StatusLive {
		t.Fatalf("live: Playable = %q, %v; want live", got, err)
	}
	r2, err := New(e.rec.cfg) // a restart: the writer is gone
	must(t, err)
	if n, err := r2.Recover(ctx); err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v", n, err)
	}
	e2 := &env{rec: r2, store: e.store, audit: e.audit, dir: e.dir}
	if got, err := r2.Playable(ctx, id); err != nil || got != StatusIncomplete {
		t.Fatalf("crashed: Playable = %q, %v; want incomplete", got, err)
	}
	if c := e2.cast(t, id); !strings.Contains(c, "before the crash") {
		t.Errorf("incomplete cast = %q, want the flushed output", c)
	}
	if _, err := r2.Events(ctx, id); err != nil {
		t.Errorf("incomplete Events: %v", err)
	}
	other := recordChunks(t, e2, 1)
	forge(t, e2, id, chunkCTs(t, e2, other))
	wantRefused(t, e2, id, "header names recording")
}
