package sshgw

import (
	"context"
	"errors"
	"fmt"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/identity"
)

// maxApprovalWait bounds the wait for a person to approve, whatever the
// approval's own expiry says.
const maxApprovalWait = 5 * time.Minute

// approve runs the keyboard-interactive step: it creates an approval bound
// to this connection's session hash and key, shows its URL and code with a
// zero-question challenge, waits for the person, re-checks the policy with
// the approver's identity and binds the key.
func (c *conn) approve(meta gossh.ConnMetadata, challenge gossh.KeyboardInteractiveChallenge, fp string, req request) (*gossh.Permissions, error) {
	ctx := c.ctx
	ev := c.authEvent(fp)
	ev.Resource, ev.Action = req.resource(), req.action()
	if err := c.s.limiter.approval(ctx, c.remote.String(), fp); err != nil {
		return nil, c.deny(ctx, ev, limitMsg(err), "approval rate limit: "+err.Error())
	}
	areq := identity.ApprovalRequest{
		SessionID:      c.id,
		SessionHash:    meta.SessionID(),
		KeyFingerprint: fp,
		Target:         req.name,
		Login:          req.login,
		Source:         c.remote.String(),
	}
	if !c.parkPre() {
		return nil, c.deny(ctx, ev, msgRateLimited, "too many connections waiting for approval from this source")
	}
	ap, err := c.s.approvals.Create(ctx, areq)
	if err != nil {
		return nil, c.deny(ctx, ev, msgUnavailable, "create approval: "+err.Error())
	}
	expires := ap.Expires
	if limit := c.s.now().Add(maxApprovalWait); expires.IsZero() || expires.After(limit) {
		expires = limit
	}
	c.extendAuth(expires)
	req2 := ev
	req2.Type, req2.Reason = "ssh.approval", "approval requested"
	req2.Details = map[string]string{"key": fp, "approval": ap.ID}
	c.s.logAudit(ctx, req2)

	if _, err := challenge("Gatehouse", approvalText(ap, req), nil, nil); err != nil {
		return nil, fmt.Errorf("show approval: %w", err)
	}
	wctx, cancel := context.WithDeadline(ctx, expires)
	defer cancel()
	got, err := c.s.approvals.Wait(wctx, ap.ID, areq)
	if err != nil {
		return nil, c.approvalFailed(ctx, ev, err)
	}
	who := authz.Subject{Email: got.Email, Groups: got.Groups, MFAAt: got.MFAAt}
	ev.Actor = who.Email
	if msg, why := c.s.checkLock(ctx, who.Email); msg != "" {
		return nil, c.deny(ctx, ev, msg, why)
	}
	// Decide with the policy in force now: a reload may have come while
	// the person was approving.
	p := c.s.policy()
	if req.target != nil {
		t := p.targets[req.target.cfg.Name]
		if t == nil || !sameEndpoint(t, req.target) {
			return nil, c.deny(ctx, ev, msgUnknownTarget, "approved, but the target changed by a reload")
		}
		req.target = t
		d := authz.DecideTarget(who, t.cfg, req.login, p.defaultMFA, c.s.now())
		if !d.Allow {
			return nil, c.deny(ctx, ev, denyMsg(req), "approved, but: "+d.Reason)
		}
	}
	if !everyConnection(req.target) {
		ttl := p.mfaMaxAge(req.target) - c.s.now().Sub(who.MFAAt)
		if ttl > 0 {
			if err := c.s.bindings.Bind(ctx, fp, who, ttl); err != nil {
				// This connection is approved; only later ones lose the
				// shortcut.
				c.log.ErrorContext(ctx, "Cannot bind the SSH key after approval.", "error", err)
			}
		}
	}
	return c.finish(ev, &authResult{who: who, fp: fp, login: req.login, target: req.target, method: "keyboard-interactive", approval: ap.ID, pol: p})
}

// approvalFailed audits why an approval did not complete and returns the
// user's message.
func (c *conn) approvalFailed(ctx context.Context, ev audit.Event, err error) error {
	switch {
	case errors.Is(err, identity.ErrApprovalDenied):
		return c.deny(ctx, ev, msgApprovalDeny, "approval denied")
	case c.ctx.Err() != nil:
		// Client gone or server shutting down: nobody to tell.
		c.markDenied()
		ev.Decision, ev.Reason = audit.Deny, "connection ended while waiting for approval"
		c.s.logAudit(ctx, ev)
		return errRefused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, identity.ErrNotFound):
		return c.deny(ctx, ev, msgApprovalGone, "approval expired or already used: "+err.Error())
	case errors.Is(err, identity.ErrApprovalMismatch):
		return c.deny(ctx, ev, msgApprovalGone, "approval bound to another connection")
	default:
		return c.deny(ctx, ev, msgUnavailable, "wait for approval: "+err.Error())
	}
}

// approvalText is the keyboard-interactive instruction: what to open and
// which code to compare.
func approvalText(ap *identity.Approval, req request) string {
	what := "connect through Gatehouse (list targets, ProxyJump)"
	if req.target != nil {
		what = "log in as " + req.login + " on " + req.name
	}
	return fmt.Sprintf("To %s, approve this connection in your browser:\n\n    %s\n\nVerification code: %s\n(expires in %d minutes; waiting...)\n",
		what, sanitize(ap.URL), sanitize(ap.Code), int(maxApprovalWait/time.Minute))
}
