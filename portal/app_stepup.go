package portal

import (
	"net/http"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/web"
)

// stepUpLoopWindow is how recent a completed step-up must be for a new
// demand of one, for the same rule, to count as a loop (issue 10). A person
// who just confirmed and is asked again at once would be asked again after
// every further confirmation: the rule's mfa_max_age is shorter than a trip
// through the portal, or the replicas' clocks disagree. Another step-up
// cannot cure either, so the gate says why instead of redirecting.
const stepUpLoopWindow = time.Minute

// maxStepUps bounds the step-ups a gate remembers; past it, it forgets
// them all (a missed loop only costs one more round trip).
const maxStepUps = 10000

// stepUpKey names one person's (portal session's) step-ups for one rule.
type stepUpKey struct{ session, rule string }

// stepUpKey returns the key for e's step-ups for rule. App sessions made
// by successive handoffs share their portal session.
func (e cacheEntry) stepUpKey(rule string) stepUpKey {
	s := e.parent
	if s == "" {
		s = e.handle
	}
	return stepUpKey{session: s, rule: rule}
}

// stepUps remembers when this gate last sent each person to a step-up for
// each rule, so that it can tell a step-up completed for that rule (an
// assertion newer than the redirect) from one that merely happened
// recently. It is safe for concurrent use. The memory is this replica's
// own: a trip that ends on another replica is caught there next time.
type stepUps struct {
	mu sync.Mutex
	at map[stepUpKey]time.Time
}

func newStepUps() *stepUps { return &stepUps{at: map[stepUpKey]time.Time{}} }

// sent records that k was sent to a step-up at now.
func (s *stepUps) sent(k stepUpKey, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.at) >= maxStepUps {
		clear(s.at)
	}
	s.at[k] = now
}

// loops reports whether a step-up demand for k is a loop at now: this gate
// sent k to a step-up, an assertion (at mfaAt) followed it, and that
// assertion is less than stepUpLoopWindow old, or dated in the future.
func (s *stepUps) loops(k stepUpKey, mfaAt, now time.Time) bool {
	s.mu.Lock()
	at, ok := s.at[k]
	s.mu.Unlock()
	return ok && !mfaAt.IsZero() && !mfaAt.Before(at) && now.Sub(mfaAt) < stepUpLoopWindow
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
