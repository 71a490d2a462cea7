package portal

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/web"
)

// maxApprovalID bounds the ID taken from the URL before any store lookup.
const maxApprovalID = 128

// maxTypedCode bounds the typed verification code before it reaches
// identity (codes are 9 characters; spaces and dashes are ignored).
const maxTypedCode = 32

// approvePage shows an SSH approval: where the connection comes from (its
// source address, key fingerprint, target, login and time) and a field for
// the verification code the person's terminal shows. It never shows the
// code itself: a person who opens a forwarded link cannot know it (number
// matching, issue 12). It needs a full session; the approve button asks
// for a fresh assertion before it posts.
func (p *Portal) approvePage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if p.approvals == nil || id == "" || len(id) > maxApprovalID {
		p.message(w, r, http.StatusNotFound, "Unknown approval", "This approval link is not valid.", nil)
		return
	}
	s := p.requireSession(w, r, "/approve/"+url.PathEscape(id), true)
	if s == nil {
		return
	}
	p.showApproval(w, r, s, id, http.StatusOK, "")
}

// showApproval renders the approval page for id with status and the
// refusal msg of the last attempt ("" for none).
func (p *Portal) showApproval(w http.ResponseWriter, r *http.Request, s *identity.Session, id string, status int, msg string) {
	ap, err := p.approvals.Get(r.Context(), id)
	if err != nil {
		p.approvalFailed(w, r, err)
		return
	}
	if ap.State != identity.ApprovalPending {
		p.message(w, r, http.StatusGone, "Already decided", "This connection was already approved or denied.", nil)
		return
	}
	pg := p.page(s, "Approve SSH connection", web.Approve{
		Action:       "/approve/" + url.PathEscape(id),
		Fingerprint:  ap.KeyFingerprint,
		Target:       ap.Target,
		Login:        ap.Login,
		Source:       ap.Source,
		Created:      ap.Created,
		Expires:      ap.Expires,
		Error:        msg,
		AttemptsLeft: ap.CodeAttemptsLeft,
		AssertBegin:  "/auth/webauthn/assert/begin",
		AssertFinish: "/auth/webauthn/assert/finish",
	})
	pg.Script = true
	p.render(w, r, status, "approve", pg)
}

// approvePost approves or denies. Approving needs the code the terminal
// shows, typed, and an assertion within approveFreshness; denying needs
// neither (it can only take access away).
func (p *Portal) approvePost(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if p.approvals == nil || id == "" || len(id) > maxApprovalID {
		p.message(w, r, http.StatusNotFound, "Unknown approval", "This approval link is not valid.", nil)
		return
	}
	s := p.formSession(w, r)
	if s == nil {
		return
	}
	if p.limited(w, r, "approve", s.Email, false) {
		return
	}
	ctx := r.Context()
	switch r.PostFormValue("decision") {
	case "deny":
		if err := p.approvals.Deny(ctx, id, s.Subject()); err != nil {
			p.approvalFailed(w, r, err)
			return
		}
		p.message(w, r, http.StatusOK, "Connection denied", "The SSH connection was refused. You can close this page.", nil)
	case "approve":
		typed := r.PostFormValue("code")
		if typed == "" || len(typed) > maxTypedCode {
			p.approvalRefused(w, r, s, id, "verification code not typed",
				"Type the verification code your terminal shows.")
			return
		}
		age := p.now().Sub(s.MFAAt)
		if s.MFAAt.IsZero() || age > approveFreshness || age < -approveFreshness {
			p.approvalRefused(w, r, s, id, "no fresh security key assertion",
				"Approving needs a touch of your security key on this page. Go back and press Approve again.")
			return
		}
		err := p.approvals.ApproveWithCode(ctx, id, s.Subject(), typed)
		switch {
		case err == nil:
			p.message(w, r, http.StatusOK, "Connection approved", "Go back to your terminal: the connection continues there.", nil)
		case errors.Is(err, identity.ErrApprovalDenied):
			// identity audited the last wrong code and cancelled.
			p.message(w, r, http.StatusForbidden, "Connection refused",
				"The code did not match too many times, so Gatehouse refused this SSH connection. If it was you, connect again.", err)
		case errors.Is(err, identity.ErrWrongCode):
			p.showApproval(w, r, s, id, http.StatusForbidden,
				"That is not the code your terminal shows. Check it and try again; if you did not start this connection, deny it.")
		default:
			p.approvalFailed(w, r, err)
		}
	default:
		p.message(w, r, http.StatusBadRequest, "Unknown decision", "Choose approve or deny.", nil)
	}
}

// approvalRefused audits and answers an approval the portal refused before
// asking identity.
func (p *Portal) approvalRefused(w http.ResponseWriter, r *http.Request, s *identity.Session, id, reason, text string) {
	rid := newRequestID()
	p.logAudit(r, audit.Event{Type: "approval", Actor: s.Email, Action: "approve", Decision: audit.Deny,
		Reason: reason, Source: r.RemoteAddr, Details: map[string]string{"request_id": rid, "approval": shortID(id)}})
	p.render(w, r, http.StatusForbidden, "error", web.Page{Title: "Not approved", Email: s.Email, CSRF: csrfToken(s.ID), RequestID: rid,
		Body: web.Message{Status: http.StatusForbidden, Heading: "Not approved", Text: text, Link: "/approve/" + url.PathEscape(id), LinkText: "Back to the approval"}})
}

// approvalFailed maps identity's approval errors to pages.
func (p *Portal) approvalFailed(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, identity.ErrNotFound):
		p.message(w, r, http.StatusNotFound, "Approval expired",
			"This approval link has expired or was already used. Connect again to get a new one.", err)
	case errors.Is(err, identity.ErrLocked):
		p.message(w, r, http.StatusForbidden, "Account locked", "Your account is locked. Ask your Gatehouse administrators.", err)
	case errors.Is(err, identity.ErrForbidden), errors.Is(err, identity.ErrMFARequired):
		p.message(w, r, http.StatusForbidden, "Not approved", "Gatehouse refused this approval.", err)
	default:
		p.unavailable(w, r, err)
	}
}

// shortID returns a prefix of a secret ID that identifies it in the audit
// log without making it usable.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
