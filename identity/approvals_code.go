package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
)

// MaxCodeAttempts is how many wrong verification codes an approval takes;
// the last one cancels it (denied), so that guessing the code is hopeless
// (3 tries in 32^8) and a person who cannot match it is not asked again.
const MaxCodeAttempts = 3

// ErrWrongCode means the typed verification code is not the one the
// terminal shows. Once the attempts are used up the error also wraps
// ErrApprovalDenied: the approval was cancelled.
var ErrWrongCode = errors.New("identity: verification code does not match")

// casTries bounds how often a counted attempt retries a lost
// compare-and-swap before it gives up (fail closed: not approved).
const casTries = 5

// ApproveWithCode approves the pending approval id for s if typed is the
// code the person's terminal shows (number matching: a person who approves
// a forwarded link cannot know it). The comparison ignores case, spaces
// and dashes and runs in constant time. A wrong code is counted and audited
// and returns ErrWrongCode; the MaxCodeAttempts-th wrong code cancels the
// approval (the waiting connection gets ErrApprovalDenied) and returns an
// error wrapping both ErrWrongCode and ErrApprovalDenied. Everything else
// is as Approve: s must be a signed-in person with an assertion, a locked
// account gets ErrLocked, an unknown, expired or decided approval
// ErrNotFound.
func (a *Approvals) ApproveWithCode(ctx context.Context, id string, s authz.Subject, typed string) error {
	if s.Email == "" || s.MFAAt.IsZero() {
		return fmt.Errorf("%w: approval needs a signed-in person with a webauthn assertion", ErrForbidden)
	}
	for range casTries {
		r, raw, err := a.load(ctx, id)
		if err != nil {
			return err
		}
		if r.State != ApprovalPending {
			return fmt.Errorf("%w: approval already %s", ErrNotFound, r.State)
		}
		if codeMatches(r.Code, typed) {
			return a.decide(ctx, id, s, ApprovalApproved)
		}
		done, err := a.countWrongCode(ctx, id, r, raw, s)
		if err != nil || done {
			return err
		}
	}
	return fmt.Errorf("%w: approval kept changing", ErrNotFound)
}

// countWrongCode stores one more wrong attempt on r (whose stored form is
// raw), cancelling the approval at MaxCodeAttempts. It reports false (and
// no error) when another change won the race and the caller must reload.
func (a *Approvals) countWrongCode(ctx context.Context, id string, r *approvalRec, raw []byte, s authz.Subject) (bool, error) {
	r.Attempts++
	cancel := r.Attempts >= MaxCodeAttempts
	if cancel {
		r.State, r.Email, r.Groups, r.MFAAt = ApprovalDenied, s.Email, slices.Clone(s.Groups), s.MFAAt
	}
	next, err := json.Marshal(r)
	if err != nil {
		return true, err
	}
	ttl := r.Expires.Sub(a.d.Now())
	if ttl <= 0 {
		return true, fmt.Errorf("%w: approval expired", ErrNotFound)
	}
	ok, err := a.d.Store.CompareAndSwap(ctx, approvalKey(id), raw, next, ttl)
	if err != nil {
		return true, fmt.Errorf("store approval: %w", err)
	}
	if !ok {
		return false, nil
	}
	reason := "verification code does not match"
	if cancel {
		reason = "cancelled after " + strconv.Itoa(r.Attempts) + " wrong verification codes"
	}
	_ = a.d.record(ctx, audit.Event{Type: EventApproval, Actor: s.Email, Resource: "target:" + r.Target,
		Action: "login " + r.Login, Decision: audit.Deny, Session: r.SessionID, Reason: reason,
		Details: map[string]string{"fingerprint": r.KeyFingerprint, "ssh_source": r.Source, "attempt": strconv.Itoa(r.Attempts)}})
	if !cancel {
		return true, fmt.Errorf("%w (%d attempts left)", ErrWrongCode, MaxCodeAttempts-r.Attempts)
	}
	if err := a.d.Store.Publish(ctx, approvalChannel(id), []byte(ApprovalDenied)); err != nil {
		a.d.Logger.WarnContext(ctx, "Failed to publish approval; waiters will poll.", "error", err)
	}
	return true, fmt.Errorf("%w: %w: approval cancelled", ErrWrongCode, ErrApprovalDenied)
}
