package portal

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/web"
)

// castContentType is asciicast's media type (asciinema serves casts so).
const castContentType = "application/x-asciicast"

// reviewPlayer shows one recording: the player (replay, or the live
// stream with ?live=1 while the session runs) and its structured events.
// Opening it is audited (recording.view); the playback itself is audited
// when the player fetches the recording or the stream.
func (p *Portal) reviewPlayer(w http.ResponseWriter, r *http.Request) {
	id := recordingID(r)
	here := "/review/"
	if id != "" {
		here = recordingPath(id, "")
		if r.URL.Query().Get("live") != "" {
			here += "?live=1"
		}
	}
	s, m, ok := p.reviewedRecording(w, r, here)
	if !ok {
		return
	}
	ctx := r.Context()
	body := web.ReviewPlayer{Session: reviewRow(m, p.now()), CastURL: recordingPath(id, "/cast"),
		PlayerReady: web.PlayerBuilt(), CanTerminate: p.review.Terminate != nil, CanLock: p.review.Lock != nil, Back: "/review/"}
	if body.Session.Live && r.URL.Query().Get("live") != "" {
		body.LiveURL = recordingPath(id, "/live")
	}
	action := "open"
	if body.LiveURL != "" {
		action = "open live"
	}
	if err := p.reviewAudit(r, s, "recording.view", action, m, nil); err != nil {
		p.unavailable(w, r, err)
		return
	}
	events, err := p.review.Recordings.Events(ctx, id)
	if err != nil {
		rid := newRequestID()
		p.logger.WarnContext(ctx, "Recording events unreadable.", "request_id", rid, "recording", id, "error", err)
		body.EventsError = "The events of this recording cannot be read (request " + rid + ")."
		if errors.Is(err, recording.ErrTampered) {
			body.EventsError = "This recording failed its integrity check and is not shown; `gatehouse recordings verify " + id + "` names the problem (request " + rid + ")."
		}
	}
	for _, e := range events {
		body.Events = append(body.Events, reviewEvent(e, m))
	}
	p.render(cspWriter{ResponseWriter: w, csp: playerCSP}, r, http.StatusOK, "review_play", p.page(s, "Session of "+m.User, body))
}

// reviewEvent describes e for the list beside the player, at its offset
// from the start of recording m.
func reviewEvent(e recording.Event, m recording.Meta) web.ReviewEvent {
	off := max(e.Time.Sub(m.Start).Seconds(), 0)
	out := web.ReviewEvent{Offset: off, Time: e.Time, Type: e.Type,
		At: fmt.Sprintf("%d:%02d", int(off)/60, int(off)%60)}
	for k, v := range e.Fields {
		out.Fields = append(out.Fields, web.Field{Name: k, Value: v})
	}
	sort.Slice(out.Fields, func(i, j int) bool { return out.Fields[i].Name < out.Fields[j].Name })
	return out
}

// reviewCast sends a recording as plain asciicast v2, what the player
// loads and what a reviewer downloads. It is a playback: audited first
// (recording.play), and refused if the audit log cannot take it.
func (p *Portal) reviewCast(w http.ResponseWriter, r *http.Request) {
	s, m, ok := p.reviewedRecording(w, r, "/review/")
	if !ok {
		return
	}
	ctx, id := r.Context(), m.ID
	if err := p.reviewAudit(r, s, "recording.play", "replay", m, nil); err != nil {
		p.unavailable(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", castContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", `inline; filename="`+id+`.cast"`) // id: recordingID's characters only
	cw := &countWriter{w: w}
	if err := p.review.Recordings.Cast(ctx, id, cw); err != nil {
		if cw.n == 0 {
			h.Del("Content-Disposition")
			p.castFailed(w, r, id, err)
			return
		}
		// The status is sent: the cast ends early. The player shows what
		// came; the log says why.
		p.logger.ErrorContext(ctx, "Recording cast failed mid-way.", "recording", id, "bytes", cw.n, "error", err)
	}
}

// castFailed answers a cast that could not be sent. A recording that
// fails verification is refused as such (the details go to the log only,
// through message), not reported as an outage.
func (p *Portal) castFailed(w http.ResponseWriter, r *http.Request, id string, err error) {
	if errors.Is(err, recording.ErrTampered) {
		p.message(w, r, http.StatusUnprocessableEntity, "Recording failed verification",
			"This recording does not match its seal or hash chain, so it is not shown. `gatehouse recordings verify "+id+"` names the problem.", err)
		return
	}
	p.recordingFailed(w, r, err)
}

// countWriter counts what was written through it.
type countWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// reviewAction is the common start of a console action on one recording
// (terminate, lock) posted by a reviewer: the action must be on, the form
// session a reviewer's, CSRF-checked (formSession), with a fresh key
// assertion (else a step-up, after which the reviewer presses the button
// again), and the recording must exist. It answers and reports false
// otherwise; back is where the form goes back to.
func (p *Portal) reviewAction(w http.ResponseWriter, r *http.Request, on bool) (s *identity.Session, m recording.Meta, back string, ok bool) {
	if p.review.Recordings == nil || !on {
		p.message(w, r, http.StatusNotFound, "Not found", "There is nothing here.", nil)
		return nil, m, "", false
	}
	id := recordingID(r)
	if s = p.formSession(w, r); s == nil || !p.reviewAllowed(w, r, s) {
		return nil, m, "", false
	}
	back = reviewReturn(r.PostFormValue("rd"))
	if !p.reviewFresh(s) {
		http.Redirect(w, r, withRD("/auth/stepup", back), http.StatusSeeOther)
		return nil, m, "", false
	}
	if id == "" {
		p.recordingFailed(w, r, recording.ErrNotFound)
		return nil, m, "", false
	}
	m, err := p.review.Recordings.Get(r.Context(), id)
	if err != nil {
		p.recordingFailed(w, r, err)
		return nil, m, "", false
	}
	return s, m, back, true
}

// reviewTerminate ends a live session on a reviewer's POST (CSRF-checked)
// and goes back to the page it came from. It records who did it
// (recording.terminate); sshgw records the session's end with the same
// name.
func (p *Portal) reviewTerminate(w http.ResponseWriter, r *http.Request) {
	s, m, back, ok := p.reviewAction(w, r, p.review.Terminate != nil)
	if !ok {
		return
	}
	ctx := r.Context()
	if m.Status != recording.StatusLive {
		p.message(w, r, http.StatusConflict, "Session already ended", "This session is not live any more.", nil)
		return
	}
	found, err := p.review.Terminate(ctx, m.SessionID, s.Email)
	if err != nil {
		p.logAudit(r, audit.Event{Type: "recording.terminate", Actor: s.Email, Resource: "recording:" + m.ID, Action: "terminate",
			Decision: audit.Deny, Reason: "terminate failed", Source: r.RemoteAddr, Session: m.SessionID,
			Details: map[string]string{"user": m.User, "target": m.Target}})
		p.message(w, r, http.StatusServiceUnavailable, "Not terminated",
			"Gatehouse could not end this session. Try again; if it keeps failing, lock the person's account.", err)
		return
	}
	p.logAudit(r, audit.Event{Type: "recording.terminate", Actor: s.Email, Resource: "recording:" + m.ID, Action: "terminate",
		Decision: audit.Allow, Source: r.RemoteAddr, Session: m.SessionID,
		Details: map[string]string{"user": m.User, "target": m.Target, "found": fmt.Sprint(found)}})
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// reviewReturn checks where a console form goes back to: a console path,
// else the list.
func reviewReturn(rd string) string {
	if !strings.HasPrefix(rd, "/review/") || len(rd) > 512 || !returnShapeOK(rd) || strings.Contains(rd, "..") {
		return "/review/"
	}
	return rd
}
