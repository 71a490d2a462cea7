package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/store"
)

// ApprovalTTL is how long an SSH approval may wait for the person.
const ApprovalTTL = 5 * time.Minute

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
)

const (
	// codeAlphabet has no 0/O or 1/I: 32 symbols, 5 bits each.
	codeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	codeLen      = 8
	// approvalPoll is how often Wait re-reads the store when no
	// notification arrives (another replica, or a lost message).
	approvalPoll = time.Second
	maxFieldLen  = 256
)

// ApprovalRequest describes the SSH connection asking for approval.
type ApprovalRequest struct {
	SessionID      string // the gateway's connection/session ID (for audit)
	SessionHash    []byte // the SSH session identifier (exchange hash)
	KeyFingerprint string // SHA256 fingerprint of the offered public key
	Target, Login  string
	Source         string // the client's remote address
}

// Approval is one SSH approval as the page and the gateway see it.
type Approval struct {
	// ID is the unguessable (256-bit) identifier in the approval URL.
	ID string
	// Code is the short verification code shown both by ssh and the page,
	// formatted "ABCD-EFGH".
	Code string
	// URL is PUBLIC_URL/approve/ID.
	URL     string
	Expires time.Time
	// State is ApprovalPending, ApprovalApproved or ApprovalDenied.
	State string
	// Who approved: set once approved.
	Email    string
	Groups   []string
	MFAAt    time.Time
	Approved bool
	// What is being approved, for the page: the page shows where the
	// connection comes from so that a forwarded link stands out.
	KeyFingerprint string
	Target, Login  string
	Source         string
	// Created is when the connection asked for approval.
	Created time.Time
	// CodeAttemptsLeft is how many wrong codes ApproveWithCode still
	// accepts before it cancels the approval.
	CodeAttemptsLeft int
}

// approvalRec is the stored form.
type approvalRec struct {
	Code           string    `json:"code"`
	SessionID      string    `json:"session_id"`
	SessionHash    []byte    `json:"session_hash"`
	KeyFingerprint string    `json:"fp"`
	Target         string    `json:"target"`
	Login          string    `json:"login"`
	Source         string    `json:"source"`
	Created        time.Time `json:"created"`
	Expires        time.Time `json:"expires"`
	State          string    `json:"state"`
	Email          string    `json:"email,omitempty"`
	Groups         []string  `json:"groups,omitempty"`
	MFAAt          time.Time `json:"mfa_at,omitzero"`
	// Attempts counts wrong codes typed in ApproveWithCode.
	Attempts int `json:"attempts,omitempty"`
}

// Approvals creates and resolves connection-bound SSH approvals kept in the
// store under "identity/approval/<hash of id>". It is safe for concurrent
// use and works across replicas (Wait subscribes to "approval/<id>" and
// polls every second as a fallback).
type Approvals struct {
	d       Deps
	baseURL string
}

// NewApprovals returns Approvals whose URLs start with publicURL.
func NewApprovals(d Deps, publicURL string) (*Approvals, error) {
	d, err := d.check()
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(publicURL, "https://") {
		return nil, fmt.Errorf("identity: approvals: public_url %q must be https", publicURL)
	}
	return &Approvals{d: d, baseURL: strings.TrimRight(publicURL, "/") + "/approve/"}, nil
}

func approvalKey(id string) string { return "identity/approval/" + hashToken(id) }

func approvalChannel(id string) string { return "approval/" + id }

// newCode returns a random verification code "ABCD-EFGH".
func newCode() (string, error) {
	b := make([]byte, codeLen)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	out := make([]byte, 0, codeLen+1)
	for i, c := range b {
		if i == codeLen/2 {
			out = append(out, '-')
		}
		out = append(out, codeAlphabet[c%32]) // 256 is a multiple of 32: no bias
	}
	return string(out), nil
}

// Create records a pending approval for req, valid for ApprovalTTL.
func (a *Approvals) Create(ctx context.Context, req ApprovalRequest) (*Approval, error) {
	if len(req.SessionHash) == 0 || req.KeyFingerprint == "" {
		return nil, errors.New("identity: approval: session hash and key fingerprint are required")
	}
	for _, f := range []string{req.SessionID, req.KeyFingerprint, req.Target, req.Login, req.Source} {
		if len(f) > maxFieldLen {
			return nil, errors.New("identity: approval: oversized field")
		}
	}
	id, err := randomToken(32)
	if err != nil {
		return nil, err
	}
	code, err := newCode()
	if err != nil {
		return nil, err
	}
	now := a.d.Now()
	rec := approvalRec{
		Code: code, SessionID: req.SessionID, SessionHash: req.SessionHash, KeyFingerprint: req.KeyFingerprint,
		Target: req.Target, Login: req.Login, Source: req.Source,
		Created: now, Expires: now.Add(ApprovalTTL), State: ApprovalPending,
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	ok, err := a.d.Store.SetNX(ctx, approvalKey(id), raw, ApprovalTTL)
	if err != nil {
		return nil, fmt.Errorf("store approval: %w", err)
	}
	if !ok {
		return nil, errors.New("identity: approval ID collision")
	}
	return a.view(id, &rec), nil
}

// view converts a record for callers.
func (a *Approvals) view(id string, r *approvalRec) *Approval {
	return &Approval{
		ID: id, Code: r.Code, URL: a.baseURL + id, Expires: r.Expires, State: r.State,
		Email: r.Email, Groups: slices.Clone(r.Groups), MFAAt: r.MFAAt, Approved: r.State == ApprovalApproved,
		KeyFingerprint: r.KeyFingerprint, Target: r.Target, Login: r.Login, Source: r.Source,
		Created: r.Created, CodeAttemptsLeft: max(MaxCodeAttempts-r.Attempts, 0),
	}
}

// load reads a live approval and its raw bytes.
func (a *Approvals) load(ctx context.Context, id string) (*approvalRec, []byte, error) {
	if id == "" || len(id) > 128 {
		return nil, nil, ErrNotFound
	}
	raw, err := a.d.Store.Get(ctx, approvalKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load approval: %w", err)
	}
	var r approvalRec
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, nil, fmt.Errorf("decode approval: %w", err)
	}
	if !a.d.Now().Before(r.Expires) {
		return nil, nil, fmt.Errorf("%w: approval expired", ErrNotFound)
	}
	return &r, raw, nil
}

// Get returns the approval for the page (ErrNotFound when unknown, used or
// expired). It does not consume it.
func (a *Approvals) Get(ctx context.Context, id string) (*Approval, error) {
	r, _, err := a.load(ctx, id)
	if err != nil {
		return nil, err
	}
	return a.view(id, r), nil
}

// CheckCode reports whether typed matches the approval's code (case, spaces
// and dashes ignored; constant-time). It counts nothing: the approve page
// uses ApproveWithCode, which limits the attempts.
func CheckCode(ap *Approval, typed string) bool {
	if ap == nil {
		return false
	}
	return codeMatches(ap.Code, typed)
}

// codeMatches compares a typed code with the issued one in constant time.
func codeMatches(code, typed string) bool {
	if len(typed) > 64 {
		return false
	}
	norm := func(s string) []byte {
		return []byte(strings.Map(func(r rune) rune {
			switch {
			case r == '-' || r == ' ' || r == '\t':
				return -1
			case r >= 'a' && r <= 'z':
				return r - 'a' + 'A'
			}
			return r
		}, s))
	}
	want := norm(code)
	return len(want) == codeLen && subtle.ConstantTimeCompare(norm(typed), want) == 1
}

// Approve marks a pending approval approved by s. The caller has verified
// that s comes from a full session with a fresh assertion and that the
// person typed the code (ApproveWithCode does that check itself). It fails with ErrNotFound when the approval is
// unknown, expired or already decided, and ErrLocked for a locked account.
func (a *Approvals) Approve(ctx context.Context, id string, s authz.Subject) error {
	return a.decide(ctx, id, s, ApprovalApproved)
}

// Deny marks a pending approval denied by s.
func (a *Approvals) Deny(ctx context.Context, id string, s authz.Subject) error {
	return a.decide(ctx, id, s, ApprovalDenied)
}

// decide moves a pending approval to state and notifies waiters.
func (a *Approvals) decide(ctx context.Context, id string, s authz.Subject, state string) error {
	if s.Email == "" || (state == ApprovalApproved && s.MFAAt.IsZero()) {
		return fmt.Errorf("%w: approval needs a signed-in person with a webauthn assertion", ErrForbidden)
	}
	if state == ApprovalApproved {
		if err := refuseLocked(ctx, a.d.Store, s.Email); err != nil {
			if errors.Is(err, ErrLocked) {
				a.d.deny(ctx, EventApproval, s.Email, audit.ReasonLocked, map[string]string{"approval": id})
			}
			return err
		}
	}
	r, raw, err := a.load(ctx, id)
	if err != nil {
		return err
	}
	if r.State != ApprovalPending {
		return fmt.Errorf("%w: approval already %s", ErrNotFound, r.State)
	}
	r.State, r.Email, r.Groups, r.MFAAt = state, s.Email, slices.Clone(s.Groups), s.MFAAt
	next, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ttl := r.Expires.Sub(a.d.Now())
	if ttl <= 0 {
		return fmt.Errorf("%w: approval expired", ErrNotFound)
	}
	decision := audit.Allow
	if state == ApprovalDenied {
		decision = audit.Deny
	}
	// Record first: an approval that cannot be audited does not happen.
	aerr := a.d.record(ctx, audit.Event{Type: EventApproval, Actor: s.Email, Resource: "target:" + r.Target,
		Action: "login " + r.Login, Decision: decision, Session: r.SessionID, Reason: "decided in the portal",
		Details: map[string]string{"fingerprint": r.KeyFingerprint, "ssh_source": r.Source}})
	if aerr != nil && state == ApprovalApproved {
		return aerr
	}
	ok, err := a.d.Store.CompareAndSwap(ctx, approvalKey(id), raw, next, ttl)
	if err != nil {
		a.d.deny(ctx, EventApproval, s.Email, "decision not stored: "+err.Error(), nil)
		return fmt.Errorf("store approval: %w", err)
	}
	if !ok {
		a.d.deny(ctx, EventApproval, s.Email, "decision lost a race with another decision or expiry", nil)
		return fmt.Errorf("%w: approval changed meanwhile", ErrNotFound)
	}
	if err := a.d.Store.Publish(ctx, approvalChannel(id), []byte(state)); err != nil {
		a.d.Logger.WarnContext(ctx, "Failed to publish approval; waiters will poll.", "error", err)
	}
	return nil
}

// bound reports whether req is the connection r was created for.
func bound(r *approvalRec, req ApprovalRequest) bool {
	return len(req.SessionHash) > 0 && subtle.ConstantTimeCompare(r.SessionHash, req.SessionHash) == 1 &&
		subtle.ConstantTimeCompare([]byte(r.KeyFingerprint), []byte(req.KeyFingerprint)) == 1
}

// Wait blocks until the approval is decided, expires or ctx ends. It first
// checks that req has the same SessionHash and KeyFingerprint as the
// approval was created for (ErrApprovalMismatch otherwise, without
// consuming it), then consumes the decided approval (single use: a second
// Wait gets ErrNotFound). It returns the approval when approved, or an error
// wrapping ErrApprovalDenied, ErrNotFound (expired) or ctx.Err().
func (a *Approvals) Wait(ctx context.Context, id string, req ApprovalRequest) (*Approval, error) {
	r, _, err := a.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if !bound(r, req) {
		a.d.deny(ctx, EventApprovalBind, "", "approval presented on another connection or with another key",
			map[string]string{"fingerprint": truncate(req.KeyFingerprint, maxFieldLen), "session": truncate(req.SessionID, maxFieldLen), "ssh_source": truncate(req.Source, maxFieldLen)})
		return nil, ErrApprovalMismatch
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	notes, err := a.d.Store.Subscribe(sctx, approvalChannel(id))
	if err != nil {
		a.d.Logger.WarnContext(ctx, "Approval subscribe failed; polling only.", "error", err)
		notes = nil
	}
	expiry := time.NewTimer(max(r.Expires.Sub(a.d.Now()), 0))
	defer expiry.Stop()
	poll := time.NewTicker(approvalPoll)
	defer poll.Stop()
	for {
		r, raw, err := a.load(ctx, id)
		if err != nil {
			return nil, err
		}
		if r.State != ApprovalPending {
			return a.consume(ctx, id, raw)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-expiry.C:
		case <-poll.C:
		case _, ok := <-notes:
			if !ok {
				notes = nil
			}
		}
	}
}

// consume deletes a decided approval and returns its outcome. Exactly one
// caller wins the GetDel; every other one gets ErrNotFound.
func (a *Approvals) consume(ctx context.Context, id string, seen []byte) (*Approval, error) {
	raw, err := a.d.Store.GetDel(ctx, approvalKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: approval already used", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("consume approval: %w", err)
	}
	if !bytes.Equal(raw, seen) {
		// Decided records never change again, so this cannot happen unless
		// the store was edited underneath us: fail closed.
		return nil, fmt.Errorf("%w: approval changed while consumed", ErrForbidden)
	}
	var r approvalRec
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("decode approval: %w", err)
	}
	if !a.d.Now().Before(r.Expires) {
		return nil, fmt.Errorf("%w: approval expired", ErrNotFound)
	}
	if r.State != ApprovalApproved {
		return nil, ErrApprovalDenied
	}
	return a.view(id, &r), nil
}
