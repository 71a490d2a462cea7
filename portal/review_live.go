package portal

import (
	"bytes"
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/recording"
)

// Live stream timing. The keepalive comment keeps proxies and the front
// door's idle limits from closing a quiet stream, and is when the stream
// checks that the reviewer's session still stands (a sign-out or a lock
// ends the watching too). The write timeout bounds one write to a reader
// that stopped reading.
const (
	liveKeepalive    = 15 * time.Second
	liveWriteTimeout = 30 * time.Second
)

// reviewLive streams a live session's output as Server-Sent Events, in the
// form asciinema-player's eventsource driver reads: each message is one
// asciicast v2 line (the header first, then [time, "o", data] events), and
// an event named "done" ends the stream. Watching is a playback: audited
// (recording.play, watch) before anything is sent.
func (p *Portal) reviewLive(w http.ResponseWriter, r *http.Request) {
	s, m, ok := p.reviewedRecording(w, r, "/review/")
	if !ok {
		return
	}
	ctx := r.Context()
	var lines <-chan []byte
	if m.Status == recording.StatusLive {
		// Watch fails when the session ended meanwhile or runs on another
		// replica (only that one holds its output): the stream then just
		// ends, which the player shows as "Stream ended". An error page
		// would leave the player's EventSource spinning instead.
		ch, err := p.review.Recordings.Watch(ctx, m.ID)
		if err != nil {
			p.logger.InfoContext(ctx, "Live recording not watchable here.", "recording", m.ID, "replica", m.Replica, "error", err)
		} else {
			lines = ch
		}
	}
	if lines != nil {
		if err := p.reviewAudit(r, s, "recording.play", "watch", m, nil); err != nil {
			p.unavailable(w, r, err)
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(b []byte) bool {
		// Deadlines are for the connection, so they are wall-clock time.
		_ = rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if lines == nil {
		send(sseDone)
		return
	}
	// Send the headers now: the player's EventSource opens (and starts
	// its buffer) on them, before the session's next output.
	if !send(nil) {
		return
	}
	tick := time.NewTicker(liveKeepalive)
	defer tick.Stop()
	var fr sseFramer
	for {
		select {
		case <-ctx.Done():
			return
		case chunk, ok := <-lines:
			if !ok {
				send(append(fr.flush(), sseDone...))
				return
			}
			if msg := fr.frame(chunk); len(msg) > 0 && !send(msg) {
				return
			}
		case <-tick.C:
			if cur, err := p.session(r); err != nil || cur == nil || !authz.Member(cur.Subject(), p.cfg.Reviewers) {
				send(sseDone)
				return
			}
			if !send(sseKeepalive) {
				return
			}
		}
	}
}

var (
	sseDone      = []byte("event: done\ndata: \n\n")
	sseKeepalive = []byte(": keepalive\n\n")
)

// sseFramer frames asciicast lines as one SSE message each. The lines
// are JSON, which escapes newlines and carriage returns, so a line never
// breaks a message. A line split across chunks waits for its end (at most
// maxPendingLine bytes, then it goes as it is).
type sseFramer struct{ pending []byte }

const maxPendingLine = 1 << 20

// frame returns the messages for the complete lines that chunk ends.
func (f *sseFramer) frame(chunk []byte) []byte {
	f.pending = append(f.pending, chunk...)
	var b bytes.Buffer
	for {
		line, rest, ok := bytes.Cut(f.pending, []byte("\n"))
		if !ok {
			break
		}
		writeSSELine(&b, line)
		f.pending = rest
	}
	if len(f.pending) > maxPendingLine {
		writeSSELine(&b, f.pending)
		f.pending = nil
	}
	f.pending = append([]byte(nil), f.pending...) // do not pin the chunk
	return b.Bytes()
}

// flush returns the message for an unfinished last line, if any.
func (f *sseFramer) flush() []byte {
	var b bytes.Buffer
	writeSSELine(&b, f.pending)
	f.pending = nil
	return b.Bytes()
}

func writeSSELine(b *bytes.Buffer, line []byte) {
	// A raw carriage return ends an SSE line too; valid JSON has none.
	line = bytes.ReplaceAll(line, []byte("\r"), nil)
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	b.WriteString("data: ")
	b.Write(line)
	b.WriteString("\n\n")
}
