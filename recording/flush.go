package recording

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// storeTimeout bounds the index writes a writer makes outside any caller's
// context (timer flushes, Close).
const storeTimeout = 10 * time.Second

// encrypt encrypts one chunk to the deployment's key and the reviewers'.
func (r *Recorder) encrypt(plain []byte) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(plain) + 256)
	if err := r.encryptTo(&b, plain); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// encryptTo writes plain, encrypted, to dst.
func (r *Recorder) encryptTo(dst io.Writer, plain []byte) error {
	w, err := age.Encrypt(dst, r.keys.recipients...)
	if err != nil {
		return fmt.Errorf("recording: encrypt: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return fmt.Errorf("recording: encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("recording: encrypt: %w", err)
	}
	return nil
}

// flush writes what is buffered as one chunk, then tokenises the new text
// and writes its new search tokens. With sync it also fsyncs the file and
// turns all pending output into lines (a timer flush: nothing waits longer
// than FlushInterval). A write error is kept in w.err; nothing is written
// after it, so the file stays readable up to the last good chunk.
func (w *Writer) flush(sync bool) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	if w.sealed {
		return nil
	}
	w.mu.Lock()
	w.armed = false
	w.cutOut(sync)
	batch, text, err := w.buf, w.text, w.err
	w.buf, w.text = nil, nil
	// Take the finished output lines, raw; the pending one stays.
	raw, segs := w.out, w.segs
	if len(segs) > 0 {
		w.out = nil
		if pend := raw[w.segEnd:]; len(pend) > 0 {
			w.out = append(w.getBuf(), pend...)
		}
		w.segs, w.segEnd = nil, 0
	} else {
		raw = nil
	}
	w.mu.Unlock()
	if len(segs) > 0 {
		// Encoded here, not in Output: the session's relay only copies.
		if batch == nil {
			batch = w.getBuf()
		}
		// Room for the lines at once: growing line by line copied the
		// batch over and over (a quarter of the recorder's CPU).
		batch = slices.Grow(batch, len(raw)+len(raw)/8+len(segs)*32)
		batch = appendOutLines(batch, raw, segs)
	}
	for rest := batch; err == nil && len(rest) > 0; {
		n := chunkCut(rest)
		err = w.writeChunk(rest[:n])
		rest = rest[n:]
		w.dirty = true
	}
	// fsync at most once per FlushInterval: under bulk output a flush
	// comes every half megabyte, and a sync each time cost more than the
	// encryption. The data is in the kernel either way (a killed process
	// loses nothing written); the sync bounds what a power loss takes.
	if now := w.r.now(); err == nil && sync && w.dirty && now.Sub(w.lastSync) >= w.r.flush {
		err = w.f.Sync()
		w.lastSync, w.dirty = now, false
	}
	if err != nil {
		w.putBuf(batch)
		w.fail(err)
		return err
	}
	w.index(text, false)
	w.mu.Lock()
	more := len(w.buf) > 0 || len(w.out) > 0 || len(w.text) > 0
	switch {
	case more && w.spare == nil && batch != nil:
		w.spare = batch[:0] // busy: the next batch fills this buffer
	case !more:
		// Idle: hold no buffers (see the memory test of idle writers).
		if len(w.out) == 0 {
			w.putBuf(w.out)
			w.out = nil
		}
		w.putBuf(w.spare)
		w.spare = nil
		w.putBuf(batch)
	default:
		w.putBuf(batch)
	}
	w.putBuf(raw)
	if !w.closed && (more || w.dirty) {
		w.arm()
	}
	w.mu.Unlock()
	return nil
}

// getBuf takes an empty buffer from the pool: output buffers and flush
// batches grow to a flush's size, and growing a fresh one each time copied
// every byte over again.
func (w *Writer) getBuf() []byte { return (*bufPool.Get().(*[]byte))[:0] }

// putBuf gives a flush buffer back to the pool.
func (w *Writer) putBuf(b []byte) {
	if b != nil {
		b = b[:0]
		bufPool.Put(&b)
	}
}

// maxPlainChunk bounds the plaintext of one chunk, far below what a reader
// accepts (maxChunk), whatever one flush holds.
const maxPlainChunk = 1 << 20

// chunkCut returns how much of batch (whole lines) goes into the next
// chunk: up to maxPlainChunk, ending at a line end.
func chunkCut(batch []byte) int {
	if len(batch) <= maxPlainChunk {
		return len(batch)
	}
	if i := bytes.LastIndexByte(batch[:maxPlainChunk], '\n'); i >= 0 {
		return i + 1
	}
	if i := bytes.IndexByte(batch, '\n'); i >= 0 {
		return i + 1 // one very long line: still whole
	}
	return len(batch)
}

// recPool recycles chunk records: under bulk output a writer encrypts
// half a megabyte at a time, and a fresh buffer per chunk cost more CPU
// (allocation, zeroing, copying) than the encryption itself.
var recPool = sync.Pool{New: func() any { return new([]byte) }}

// appender is an io.Writer that appends to b.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// writeChunk encrypts, chains and appends one chunk, building the record
// (see marshalChunk) in one pooled buffer with the ciphertext written in
// place. w.flushMu is held.
func (w *Writer) writeChunk(plain []byte) error {
	rp := recPool.Get().(*[]byte)
	a := appender{b: slices.Grow((*rp)[:0], chunkHeaderLen+len(plain)+512+hashLen)[:chunkHeaderLen]}
	defer func() {
		*rp = a.b[:0]
		recPool.Put(rp)
	}()
	if err := w.r.encryptTo(&a, plain); err != nil {
		return err
	}
	ct := a.b[chunkHeaderLen:]
	w.chain = chainNext(w.chain, ct, w.n+1)
	putChunkHeader(a.b, w.n+1, len(ct))
	a.b = append(a.b, w.chain[:]...)
	if _, err := w.f.Write(a.b); err != nil {
		return fmt.Errorf("recording: write %s: %w", w.id, err)
	}
	w.n++
	return nil
}

// fail records the first write error.
func (w *Writer) fail(err error) {
	w.mu.Lock()
	first := w.err == nil
	if first {
		w.err = err
	}
	w.mu.Unlock()
	if first {
		w.r.log.Error("Recording stopped: cannot write.", "recording", w.id, "error", err)
	}
}

// index tokenises text and writes the tokens not indexed yet. Index
// failures are logged, not fatal: the recording itself is intact.
// w.flushMu is held.
func (w *Writer) index(text []byte, final bool) {
	var words []string
	emit := func(s string) {
		if w.tok.fresh(s) {
			words = append(words, s)
		}
	}
	w.tok.feed(text, emit)
	if final {
		w.tok.end(emit)
	}
	if len(words) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := w.r.indexWords(ctx, w.id, words); err != nil {
		w.r.log.Warn("Search index incomplete for a recording.", "recording", w.id, "error", err)
	}
}

// Close flushes, seals the recording (hash chain and Ed25519 signature),
// updates the index (End, Status, EndReason, Seal) and writes the seal hash
// to the audit log as a recording.seal event. After a write error it marks
// the recording incomplete instead and returns that error.
func (w *Writer) Close(reason string) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errClosed
	}
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
	err := w.flush(true)

	w.flushMu.Lock()
	end := w.r.now().UTC()
	var sealHash string
	if err == nil {
		rec := marshalSeal(w.r.keys.seal, w.hdr, w.chain, w.n, end)
		if _, err = w.f.Write(rec); err == nil {
			err = w.f.Sync()
		}
		if err == nil {
			sum := sha256.Sum256(rec)
			sealHash = hex.EncodeToString(sum[:])
		} else {
			w.fail(err)
		}
	}
	w.sealed = true
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	w.index(nil, true)
	chunks := w.n
	w.flushMu.Unlock()

	w.mu.Lock()
	m := w.meta
	m.Bytes = w.bytes
	for wt := range w.watchers {
		wt.stop()
	}
	w.watchers = nil
	w.mu.Unlock()
	m.End, m.EndReason, m.Seal, m.Status = end, reason, sealHash, StatusComplete
	if err != nil {
		m.Status = StatusIncomplete
		m.EndReason = reason + " (recording failed: " + err.Error() + ")"
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if perr := w.r.putMeta(ctx, m); perr != nil && err == nil {
		err = perr
	}
	w.r.cfg.Store.Delete(ctx, keyLive+w.id)
	w.r.mu.Lock()
	delete(w.r.live, w.id)
	w.r.mu.Unlock()
	if sealHash != "" {
		w.r.audit(ctx, audit.Event{Type: "recording.seal", Actor: m.User, Resource: "target:" + m.Target,
			Session: m.SessionID, Reason: reason, Details: map[string]string{
				"recording": w.id, "seal": sealHash, "chunks": strconv.FormatUint(uint64(chunks), 10),
				"bytes": strconv.FormatInt(m.Bytes, 10)}})
	}
	return err
}
