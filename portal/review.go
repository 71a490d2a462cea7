package portal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/web"
)

// reviewFreshness is how recent the reviewer's WebAuthn assertion must be
// to open the console: recordings show what people typed and saw on
// production, so a session left open on a desk is not enough.
const reviewFreshness = 15 * time.Minute

// playerCSP is the portal's page policy plus 'wasm-unsafe-eval', which the
// player page alone needs: asciinema-player's terminal emulator is
// WebAssembly compiled from bytes in its script. Scripts still come only
// from the portal itself.
const playerCSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// maxRecordingID bounds a recording ID taken from the URL.
const maxRecordingID = 128

// reviewRecordings is what the reviewer console reads
// (*recording.Recorder).
type reviewRecordings interface {
	List(ctx context.Context, f recording.Filter) ([]recording.Meta, error)
	Get(ctx context.Context, id string) (recording.Meta, error)
	Cast(ctx context.Context, id string, w io.Writer) error
	Events(ctx context.Context, id string) ([]recording.Event, error)
	Watch(ctx context.Context, id string) (<-chan []byte, error)
}

var _ reviewRecordings = (*recording.Recorder)(nil)

// ReviewConfig turns on the reviewer console under /review/ on the
// portal, for the people config.Reviewers lists.
type ReviewConfig struct {
	// Recordings reads recordings, their events and live output
	// (*recording.Recorder). Optional: nil turns the console off (404).
	Recordings reviewRecordings
	// Terminate ends the live SSH connection whose session ID
	// (recording.Meta.SessionID) it is given, on behalf of by (the
	// reviewer's email), and reports whether it found one
	// (sshgw.Server.Terminate). Optional: nil hides the Terminate buttons
	// and the POST answers 404.
	Terminate func(ctx context.Context, sessionID, by string) (bool, error)
	// Lock locks the person with email out on behalf of by (the reviewer's
	// email), for reason: sessions revoked, SSH keys unbound, live
	// connections ended on every replica, audited with by as actor
	// (identity.Locks.Lock). Optional: nil hides the Lock form and the
	// POST answers 404.
	Lock func(ctx context.Context, email, by, reason string) error
}

// reviewRoutes adds the console's routes to m.
func (p *Portal) reviewRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /review/{$}", p.reviewList)
	m.HandleFunc("GET /review/s/{id}", p.reviewPlayer)
	m.HandleFunc("GET /review/s/{id}/cast", p.reviewCast)
	m.HandleFunc("GET /review/s/{id}/live", p.reviewLive)
	m.HandleFunc("POST /review/s/{id}/terminate", p.reviewTerminate)
	m.HandleFunc("POST /review/s/{id}/lock", p.reviewLock)
}

// reviewer returns the session of a reviewer who may use the console now,
// or answers and returns nil: 404 when the console is off, the sign-in for
// no session, the denied page (audited) for a person who is not a
// reviewer, and a step-up back to here when the assertion is too old.
func (p *Portal) reviewer(w http.ResponseWriter, r *http.Request, here string) *identity.Session {
	if p.review.Recordings == nil {
		p.message(w, r, http.StatusNotFound, "Not found", "There is nothing here.", nil)
		return nil
	}
	s := p.requireSession(w, r, here, true)
	if s == nil {
		return nil
	}
	if !p.reviewAllowed(w, r, s) {
		return nil
	}
	if !p.reviewFresh(s) {
		http.Redirect(w, r, withRD("/auth/stepup", here), http.StatusFound)
		return nil
	}
	return s
}

// reviewedRecording starts every request about one recording: the
// reviewer (see reviewer), then the recording the path names. Otherwise it
// answers and reports false.
func (p *Portal) reviewedRecording(w http.ResponseWriter, r *http.Request, here string) (*identity.Session, recording.Meta, bool) {
	s := p.reviewer(w, r, here)
	if s == nil {
		return nil, recording.Meta{}, false
	}
	id := recordingID(r)
	if id == "" {
		p.recordingFailed(w, r, recording.ErrNotFound)
		return nil, recording.Meta{}, false
	}
	m, err := p.review.Recordings.Get(r.Context(), id)
	if err != nil {
		p.recordingFailed(w, r, err)
		return nil, recording.Meta{}, false
	}
	return s, m, true
}

// reviewAllowed reports whether s is a reviewer; otherwise it audits the
// refusal and answers with the denied page.
func (p *Portal) reviewAllowed(w http.ResponseWriter, r *http.Request, s *identity.Session) bool {
	if authz.Member(s.Subject(), p.cfg.Reviewers) {
		return true
	}
	rid := newRequestID()
	p.logAudit(r, audit.Event{Type: "review.access", Actor: s.Email, Resource: "review",
		Action: r.Method + " " + truncate(r.URL.Path, 256), Decision: audit.Deny, Reason: "not in reviewers",
		Source: r.RemoteAddr, Session: shortID16(s.Handle), Details: map[string]string{"request_id": rid, "rule": "reviewers"}})
	p.render(w, r, http.StatusForbidden, "denied", web.Page{Title: "Access denied", Email: s.Email, CSRF: csrfToken(s.ID), RequestID: rid,
		Body: web.Denied{Resource: "the reviewer console", Rule: "reviewers", Ask: askList(p.cfg.Admins),
			Reason: "The reviewer console is open only to the reviewers the configuration names."}})
	return false
}

// reviewFresh reports whether s asserted with a security key within
// reviewFreshness (allowing as much clock skew between replicas).
func (p *Portal) reviewFresh(s *identity.Session) bool {
	age := p.now().Sub(s.MFAAt)
	return !s.MFAAt.IsZero() && age <= reviewFreshness && age >= -reviewFreshness
}

// recordingID returns the path's recording ID, or "" when it cannot be one
// (empty, too long, or with characters IDs never have).
func recordingID(r *http.Request) string {
	id := r.PathValue("id")
	if id == "" || len(id) > maxRecordingID || id == "." || id == ".." {
		return ""
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return ""
		}
	}
	return id
}

// recordingPath returns the console path of recording id plus suffix.
func recordingPath(id, suffix string) string { return "/review/s/" + url.PathEscape(id) + suffix }

// reviewAudit records a reviewer's access to a recording. Unlike logAudit
// it returns the failure: a playback that cannot be audited does not
// happen (fail closed).
func (p *Portal) reviewAudit(r *http.Request, s *identity.Session, typ, action string, m recording.Meta, details map[string]string) error {
	d := map[string]string{"user": m.User, "target": m.Target, "login": m.Login}
	for k, v := range details {
		d[k] = v
	}
	err := p.audit.Log(r.Context(), audit.Event{Type: typ, Actor: s.Email, Resource: "recording:" + m.ID,
		Action: action, Decision: audit.Allow, Source: r.RemoteAddr, Session: m.SessionID, Details: d})
	if err != nil {
		return fmt.Errorf("audit %s: %w", typ, err)
	}
	return nil
}

// recordingFailed answers a failed lookup of a recording.
func (p *Portal) recordingFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, recording.ErrNotFound) {
		p.message(w, r, http.StatusNotFound, "Unknown recording", "There is no such recording; it may have been deleted by retention or a purge.", err)
		return
	}
	p.message(w, r, http.StatusServiceUnavailable, "Recordings are unavailable",
		"Gatehouse cannot read recordings right now. Try again in a moment.", err)
}

// cspWriter replaces the page's Content-Security-Policy with csp when the
// response is sent, so the shared renderer stays the one place that
// writes pages.
type cspWriter struct {
	http.ResponseWriter
	csp string
}

func (c cspWriter) WriteHeader(code int) {
	c.Header().Set("Content-Security-Policy", c.csp)
	c.ResponseWriter.WriteHeader(code)
}
