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

// approvePage shows an SSH approval: the key fingerprint, target, login,
// source and verification code. It needs a full session; the approve button
// asks for a fresh assertion before it posts.
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
		Code:         ap.Code,
		Expires:      ap.Expires,
		AssertBegin:  "/auth/webauthn/assert/begin",
		AssertFinish: "/auth/webauthn/assert/finish",
	})
	pg.Script = true
	p.render(w, r, http.StatusOK, "approve", pg)
}

// approvePost approves or denies. Approving needs the confirmation that
// the codes match and an assertion within approveFreshness; denying needs
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
		if r.PostFormValue("confirm") != "yes" {
			p.approvalRefused(w, r, s, id, "verification code not confirmed",
				"Confirm that the code on this page matches the one in your terminal.")
			return
		}
		age := p.now().Sub(s.MFAAt)
		if s.MFAAt.IsZero() || age > approveFreshness || age < -approveFreshness {
			p.approvalRefused(w, r, s, id, "no fresh security key assertion",
				"Approving needs a touch of your security key on this page. Go back and press Approve again.")
			return
		}
		if err := p.approvals.Approve(ctx, id, s.Subject()); err != nil {
			p.approvalFailed(w, r, err)
			return
		}
		p.message(w, r, http.StatusOK, "Connection approved", "Go back to your terminal: the connection continues there.", nil)
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
