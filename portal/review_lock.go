package portal

import (
	"net/http"
	"strings"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// maxLockReason bounds the reason a reviewer types for a lock.
const maxLockReason = 200

// reviewLock locks the person of a recorded session out on a reviewer's
// POST, with the same CSRF and freshness checks as Terminate: every
// session and SSH connection of theirs ends on every replica (see
// ReviewConfig.Lock). The lock's audit event names the reviewer as actor.
func (p *Portal) reviewLock(w http.ResponseWriter, r *http.Request) {
	s, m, _, ok := p.reviewAction(w, r, p.review.Lock != nil)
	if !ok {
		return
	}
	ctx := r.Context()
	if m.User == "" {
		p.message(w, r, http.StatusConflict, "Nobody to lock", "This recording names no person.", nil)
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if len(reason) > maxLockReason {
		// Cut at a character boundary: the audit log is UTF-8.
		reason = strings.ToValidUTF8(reason[:maxLockReason], "")
	}
	if reason == "" {
		reason = "locked from the reviewer console"
	}
	reason += " (recording " + m.ID + ")"
	if err := p.review.Lock(ctx, m.User, s.Email, reason); err != nil {
		p.logAudit(r, audit.Event{Type: "review.lock", Actor: s.Email, Resource: "user:" + m.User, Action: "lock",
			Decision: audit.Deny, Reason: "lock failed", Source: r.RemoteAddr, Session: m.SessionID,
			Details: map[string]string{"recording": m.ID}})
		p.message(w, r, http.StatusServiceUnavailable, "Lock incomplete",
			"Gatehouse could not complete the lock (it may be in place, with sessions not all ended). Try again.", err)
		return
	}
	p.message(w, r, http.StatusOK, "Locked",
		m.User+" is locked out: their sessions are revoked, their SSH keys unbound and their live connections are closing on every replica. `gatehouse unlock` lifts the lock.", nil)
}
