package recording

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
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
	w, err := age.Encrypt(&b, r.keys.recipients...)
	if err != nil {
		return nil, fmt.Errorf("recording: encrypt: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("recording: encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("recording: encrypt: %w", err)
	}
	return b.Bytes(), nil
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
	w.emitOut(sync)
	batch, text, err := w.buf, w.text, w.err
	w.buf, w.text = nil, nil
	w.mu.Unlock()
	if err == nil && len(batch) > 0 {
		err = w.writeChunk(batch)
	}
	if err == nil && sync {
		err = w.f.Sync()
	}
	if batch != nil {
		batch = batch[:0]
		bufPool.Put(&batch)
	}
	if err != nil {
		w.fail(err)
		return err
	}
	w.index(text, false)
	w.mu.Lock()
	if !w.closed && (len(w.buf) > 0 || len(w.out) > 0 || len(w.text) > 0) {
		w.arm()
	}
	w.mu.Unlock()
	return nil
}

// writeChunk encrypts, chains and appends one chunk. w.flushMu is held.
func (w *Writer) writeChunk(plain []byte) error {
	ct, err := w.r.encrypt(plain)
	if err != nil {
		return err
	}
	w.chain = chainNext(w.chain, ct, w.n+1)
	if _, err := w.f.Write(marshalChunk(w.n+1, ct, w.chain)); err != nil {
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
