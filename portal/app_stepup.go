package portal

import (
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/web"
)

// stepUpLoopWindow is how recent a security key confirmation must be for
// a new demand of one to count as a loop (issue 10). A person who just
// confirmed and is asked again at once would be asked again after every
// further confirmation: the rule's mfa_max_age is shorter than a trip
// through the portal, or the replicas' clocks disagree. Another step-up
// cannot cure either, so the gate says why instead of redirecting.
const stepUpLoopWindow = time.Minute

// stepUpLoops reports whether a step-up demand for a session whose last
// confirmation was at mfaAt is a loop at now. A confirmation dated in the
// future (clock skew beyond what authz tolerates) is one too.
func stepUpLoops(mfaAt, now time.Time) bool {
	return !mfaAt.IsZero() && now.Sub(mfaAt) < stepUpLoopWindow
}

// stepUpLoop answers a step-up demand that stepUpLoops found to be a loop:
// an error page naming the route and the rule (whose reason carries the
// mfa_max_age), a warning in the log and an audit event, instead of
// another redirect to the portal.
func (a *App) stepUpLoop(w http.ResponseWriter, r *http.Request, e cacheEntry, d authz.Decision, now time.Time) {
	rid := newRequestID()
	age := now.Sub(e.who.MFAAt).Round(time.Second)
	when := age.String() + " ago"
	if age < 0 {
		when = "at a time " + (-age).String() + " in the future (clocks disagree)"
	}
	reason := "step-up loop: confirmed " + when + ", yet " + d.Reason
	a.logger.WarnContext(r.Context(), "Step-up asked again right after a step-up; refusing instead of looping.",
		"request_id", rid, "rule", d.Rule, "reason", d.Reason, "mfa_age", age.String(), "session", shortID16(e.handle))
	a.logAudit(r, audit.Event{Type: "http.access", Actor: e.who.Email, Resource: "route:" + a.route.Name,
		Action: r.Method + " " + truncate(r.URL.Path, 256), Decision: audit.Deny, Reason: reason,
		Source: r.RemoteAddr, Session: shortID16(e.handle), Details: map[string]string{"request_id": rid, "rule": d.Rule}})
	a.pages.render(w, r, http.StatusForbidden, "denied", web.Page{Title: "Security key confirmation keeps repeating",
		Email: e.who.Email, RequestID: rid,
		Body: web.Denied{Resource: a.route.Name, Rule: d.Rule, Ask: a.admins,
			Reason: "You confirmed with your security key " + when + ", but " + d.Reason +
				". Confirming again would not help: ask an administrator to check this rule's mfa_max_age and the servers' clocks."}})
}
