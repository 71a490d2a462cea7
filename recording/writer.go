package recording

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Writer buffering. Output is appended to memory and written by a flush,
// which runs on a timer at most FlushInterval after data arrived, sooner
// when flushBytes are buffered, and inline (back-pressure on the session)
// only when hardBytes are buffered because flushes cannot keep up.
//
// A chunk costs one age encryption, whose X25519 key wrap per recipient
// dominates small chunks: at 64 KiB a bulk transfer spent about 1 CPU-s per
// GiB on it. Under bulk output a chunk is therefore 512 KiB; an interactive
// session still gets a chunk a second.
const (
	flushBytes     = 512 << 10
	hardBytes      = 2 << 20
	coalesceWindow = 10 * time.Millisecond // output writes closer than this share one "o" event
	maxPendingOut  = 16 << 10              // ... up to this size
	// maxTextPerSecond bounds the output tokenised for search per second
	// of the session: interactive sessions are indexed whole, a bulk `cat`
	// of a large file only in part, which keeps the relay's CPU per GiB
	// low.
	maxTextPerSecond = 64 << 10
	maxFieldIndexed  = 4 << 10 // of an event field (command, path)
	fileExt          = ".ghrec"
)

var errClosed = errors.New("recording: writer closed")

// bufPool recycles flush buffers, so an idle writer holds none.
var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// Writer records one session. Its methods are safe for concurrent use.
type Writer struct {
	r     *Recorder
	id    string
	meta  Meta
	start time.Time
	hdr   header

	flushMu  sync.Mutex // serialises flushes; guards f, chain, n, tok, sealed, dirty, lastSync
	f        *os.File
	chain    [hashLen]byte
	n        uint32
	tok      *tokenizer
	sealed   bool
	dirty    bool      // chunks written since the last fsync
	lastSync time.Time // of the file

	mu    sync.Mutex // guards everything below
	buf   []byte     // lines waiting for the next flush
	spare []byte     // a flushed batch's buffer, kept for the next while output streams
	text  []byte     // output and event words waiting to be tokenised
	// Output is kept raw and turned into "o" lines by the flush, off the
	// session's relay path: out holds the output of the finished lines
	// (segs; each ends where the next begins) and then the pending one,
	// which began at outAt and may still grow (coalescing). All of it
	// comes after every line in buf.
	out      []byte
	segs     []outSeg
	segEnd   int // where the pending output begins in out
	outAt    time.Duration
	textWin  time.Duration // start of the current second of search text
	textUsed int           // output bytes taken for search in it
	timer    *time.Timer
	armed    bool
	bytes    int64
	err      error
	closed   bool
	watchers map[*watcher]struct{}
}

// Start creates the recording of one session: it assigns m.ID if empty,
// writes the encrypted asciicast header as chunk 1 (synced to disk) and
// indexes the recording as live. When it fails, a session whose target
// requires recording must not be relayed.
func (r *Recorder) Start(ctx context.Context, m Meta) (*Writer, error) {
	now := r.now()
	if m.ID == "" {
		m.ID = newID(now)
	} else if !validID(m.ID) {
		return nil, fmt.Errorf("recording: invalid id %q", m.ID)
	}
	if m.Start.IsZero() {
		m.Start = now
	}
	m.Status, m.Replica, m.End, m.EndReason, m.Bytes, m.Seal = StatusLive, r.cfg.Replica, time.Time{}, "", 0, ""
	w := &Writer{r: r, id: m.ID, meta: m, start: now, tok: newTokenizer()}
	if err := w.create(); err != nil {
		return nil, err
	}
	if err := r.putMeta(ctx, m); err != nil {
		w.abort()
		return nil, err
	}
	if err := r.cfg.Store.Set(ctx, keyLive+m.ID, []byte(r.cfg.Replica), 0); err != nil {
		w.abort()
		return nil, fmt.Errorf("recording: index %s: %w", m.ID, err)
	}
	if m.Command != "" {
		w.text = append(w.text, capBytes(m.Command)...)
		w.text = append(w.text, '\n')
	}
	r.mu.Lock()
	r.live[m.ID] = w
	r.mu.Unlock()
	return w, nil
}

// create writes the file's header and chunk 1.
func (w *Writer) create() error {
	line, err := marshalLine(newCastHeader(w.meta))
	if err != nil {
		return fmt.Errorf("recording: %w", err)
	}
	ct, err := w.r.encrypt(line)
	if err != nil {
		return err
	}
	w.hdr = header{id: w.id, metaHash: sha256.Sum256(ct)}
	hb := w.hdr.marshal()
	w.chain = chainNext(sha256.Sum256(hb), ct, 1)
	w.n = 1
	path := w.r.path(w.id)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("recording: create: %w", err)
	}
	w.f = f
	_, err = f.Write(append(hb, marshalChunk(1, ct, w.chain)...))
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(w.r.cfg.Dir)
	}
	if err != nil {
		w.abort()
		return fmt.Errorf("recording: write %s: %w", w.id, err)
	}
	return nil
}

// abort removes a recording that failed to start.
func (w *Writer) abort() {
	if w.f != nil {
		w.f.Close()
	}
	os.Remove(w.r.path(w.id))
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	w.r.cfg.Store.Delete(ctx, keyMeta+w.id)
	w.r.cfg.Store.Delete(ctx, keyLive+w.id)
}

// ID returns the recording's ID.
func (w *Writer) ID() string { return w.id }

// Err returns the first error that stopped the recording (disk full, ...),
// so that a session whose target requires recording can end.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Output records terminal or exec output.
func (w *Writer) Output(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	t := w.r.now().Sub(w.start)
	w.mu.Lock()
	if err := w.usable(); err != nil {
		w.mu.Unlock()
		return err
	}
	w.bytes += int64(len(p))
	if pend := len(w.out) - w.segEnd; pend > 0 && (t-w.outAt > coalesceWindow || pend >= maxPendingOut) {
		w.cutOut(false)
	}
	if len(w.out) == w.segEnd {
		w.outAt = t
	}
	if w.out == nil {
		w.out = w.getBuf()
	}
	w.out = append(w.out, p...)
	if t-w.textWin >= time.Second {
		w.textWin, w.textUsed = t, 0
	}
	if room := maxTextPerSecond - w.textUsed; room > 0 {
		n := min(room, len(p))
		w.text = append(w.text, p[:n]...)
		w.textUsed += n
	}
	if len(w.watchers) > 0 {
		w.broadcast(appendEvent(nil, t, codeOutput, p))
	}
	size := w.arm()
	w.mu.Unlock()
	if size >= hardBytes {
		return w.flush(false)
	}
	return nil
}

// Resize records a terminal size change.
func (w *Writer) Resize(cols, rows int) error {
	if cols <= 0 || rows <= 0 {
		return fmt.Errorf("recording: invalid size %dx%d", cols, rows)
	}
	t := w.r.now().Sub(w.start)
	line := appendEvent(nil, t, codeResize, []byte(strconv.Itoa(cols)+"x"+strconv.Itoa(rows)))
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	w.emitOut(true)
	w.buf = append(w.buf, line...)
	if len(w.watchers) > 0 {
		w.broadcast(line)
	}
	w.arm()
	return nil
}

// Event records a structured event, with an asciicast marker so players
// show it on the timeline. Commands and paths are indexed for search.
func (w *Writer) Event(e Event) error {
	if e.Time.IsZero() {
		e.Time = w.r.now()
	}
	t := max(e.Time.Sub(w.start), 0)
	ev, err := marshalLine(eventLine{Event: &e})
	if err != nil {
		return fmt.Errorf("recording: event: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	w.emitOut(true)
	w.buf = appendEvent(w.buf, t, codeMarker, []byte(markerLabel(e)))
	w.buf = append(w.buf, ev...)
	for _, k := range []string{"command", "path", "to", "destination"} {
		if v := e.Fields[k]; v != "" {
			w.text = append(w.text, '\n')
			w.text = append(w.text, capBytes(v)...)
			w.text = append(w.text, '\n')
		}
	}
	w.arm()
	return nil
}

// usable returns why the writer takes no more data; w.mu is held.
func (w *Writer) usable() error {
	if w.closed {
		return errClosed
	}
	return w.err
}

// outSeg is the output of one "o" line (or several, see appendOutLines):
// it ends at end in Writer.out and was written at at.
type outSeg struct {
	at  time.Duration
	end int
}

// cutOut ends the pending output's line. Unless all is set, an incomplete
// UTF-8 sequence at the end stays pending for the next write. w.mu is held.
func (w *Writer) cutOut(all bool) {
	end := len(w.out)
	if !all {
		end = w.segEnd + completeUTF8(w.out[w.segEnd:])
	}
	if end > w.segEnd {
		w.segs = append(w.segs, outSeg{at: w.outAt, end: end})
		w.segEnd = end
	}
}

// emitOut turns the output written so far into "o" lines in buf, before an
// event or resize line is added. Unless all is set, an incomplete UTF-8
// sequence at the end waits for the next write. w.mu is held.
func (w *Writer) emitOut(all bool) {
	w.cutOut(all)
	if len(w.segs) == 0 {
		return
	}
	if w.buf == nil {
		if w.buf, w.spare = w.spare, nil; w.buf == nil {
			w.buf = w.getBuf()
		}
	}
	w.buf = appendOutLines(w.buf, w.out, w.segs)
	rest := copy(w.out, w.out[w.segEnd:])
	w.out, w.segs, w.segEnd = w.out[:rest], w.segs[:0], 0
}

// appendOutLines appends the "o" lines of the output segments segs of raw
// to b: one line per segment, or several of at most maxPendingOut bytes,
// cut on rune boundaries, so that no line (and no chunk) grows with one
// large write.
func appendOutLines(b, raw []byte, segs []outSeg) []byte {
	start := 0
	for _, s := range segs {
		out := raw[start:s.end]
		for i := 0; i < len(out); {
			n := min(len(out)-i, maxPendingOut)
			if i+n < len(out) {
				// Cut on a rune boundary: back up over continuation bytes.
				for k := n; k > n-utf8.UTFMax && k > 0; k-- {
					if utf8.RuneStart(out[i+k]) {
						n = k
						break
					}
				}
			}
			b = appendEvent(b, s.at, codeOutput, out[i:i+n])
			i += n
		}
		start = s.end
	}
	return b
}

// arm schedules a flush if none is pending, or at once when enough is
// buffered, and returns the buffered size. w.mu is held.
func (w *Writer) arm() int {
	size := len(w.buf) + len(w.out)
	switch {
	case w.timer == nil:
		w.timer = time.AfterFunc(w.r.flush, w.onTimer)
		w.armed = true
	case size >= flushBytes:
		w.timer.Reset(0)
		w.armed = true
	case !w.armed:
		w.timer.Reset(w.r.flush)
		w.armed = true
	}
	return size
}

func (w *Writer) onTimer() { _ = w.flush(true) }

// markerLabel is the asciicast marker text of an event.
func markerLabel(e Event) string {
	for _, k := range []string{"command", "path", "destination", "reason"} {
		if v := e.Fields[k]; v != "" {
			return e.Type + ": " + v
		}
	}
	return e.Type
}

func capBytes(s string) string {
	if len(s) > maxFieldIndexed {
		return s[:maxFieldIndexed]
	}
	return s
}

// newID returns a new recording ID: the UTC start time (so IDs sort by
// time) and 8 random bytes.
func newID(now time.Time) string {
	b := make([]byte, 8)
	rand.Read(b) // never fails (crypto/rand)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

func (r *Recorder) path(id string) string { return filepath.Join(r.cfg.Dir, id+fileExt) }

// syncDir makes a new file's directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
