package identity

import (
	"context"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// Audit event types identity writes.
const (
	EventSSOLogin     = "sso.login"
	EventEnroll       = "webauthn.enroll"
	EventAssert       = "webauthn.assert"
	EventClonedKey    = "webauthn.cloned_key"
	EventKeyRemove    = "webauthn.remove"
	EventSessionEnd   = "session.revoke"
	EventHandoff      = "session.handoff"
	EventRateLimit    = "ratelimit"
	EventApproval     = "approval"
	EventLock         = "lock"
	EventUnlock       = "unlock"
	EventInvite       = "webauthn.invite"
	EventKeyBind      = "ssh.keybind"
	EventApprovalBind = "approval.mismatch"
)

// record writes e to the audit log, filling Source from the request's
// Client. The error is logged and returned: a caller about to grant access
// fails closed on it, a caller refusing access only logs it.
func (d Deps) record(ctx context.Context, e audit.Event) error {
	if e.Source == "" {
		e.Source = clientFrom(ctx).Source
	}
	if e.Time.IsZero() {
		e.Time = d.Now()
	}
	if err := d.Audit.Log(ctx, e); err != nil {
		d.Logger.ErrorContext(ctx, "Audit log write failed.", "type", e.Type, "error", err)
		return err
	}
	return nil
}

// deny records a refusal; a failure to record it is only logged, because the
// refusal stands either way.
func (d Deps) deny(ctx context.Context, typ, actor, reason string, details map[string]string) {
	_ = d.record(ctx, audit.Event{Type: typ, Actor: actor, Decision: audit.Deny, Reason: reason, Details: details})
}
