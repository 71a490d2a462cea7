package identity

import (
	"context"
	"time"

	"github.com/gatehouse-dev/gatehouse/authz"
)

// ApprovalTTL is how long an SSH approval may wait for the person.
const ApprovalTTL = 5 * time.Minute

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
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
	// Code is the short verification code shown both by ssh and the page.
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
	// What is being approved, for the page.
	KeyFingerprint string
	Target, Login  string
	Source         string
}

// Approvals creates and resolves connection-bound SSH approvals kept in the
// store under "identity/approval/<id>". It is safe for concurrent use and
// works across replicas (Wait subscribes to "approval/<id>" and polls).
type Approvals struct {
	d Deps
}

// NewApprovals returns Approvals whose URLs start with publicURL.
func NewApprovals(d Deps, publicURL string) (*Approvals, error) {
	return nil, errNotReady
}

// Create records a pending approval for req, valid for ApprovalTTL.
func (a *Approvals) Create(ctx context.Context, req ApprovalRequest) (*Approval, error) {
	return nil, errNotReady
}

// Get returns the approval for the page (ErrNotFound when unknown, used or
// expired). It does not consume it.
func (a *Approvals) Get(ctx context.Context, id string) (*Approval, error) {
	return nil, errNotReady
}

// CheckCode reports whether typed matches the approval's code (case, spaces
// and dashes ignored; constant-time).
func CheckCode(ap *Approval, typed string) bool {
	return false
}

// Approve marks a pending approval approved by s. The caller has verified
// that s comes from a full session with a fresh assertion and that the
// person confirmed the code. It fails with ErrNotFound when the approval is
// unknown, expired or already decided, and ErrLocked for a locked account.
func (a *Approvals) Approve(ctx context.Context, id string, s authz.Subject) error {
	return errNotReady
}

// Deny marks a pending approval denied by s.
func (a *Approvals) Deny(ctx context.Context, id string, s authz.Subject) error {
	return errNotReady
}

// Wait blocks until the approval is decided, expires or ctx ends. It first
// checks that req has the same SessionHash and KeyFingerprint as the
// approval was created for (ErrApprovalMismatch otherwise, without
// consuming it), then consumes the decided approval (single use: a second
// Wait gets ErrNotFound). It returns the approval when approved, or an error
// wrapping ErrApprovalDenied, ErrNotFound (expired) or ctx.Err().
func (a *Approvals) Wait(ctx context.Context, id string, req ApprovalRequest) (*Approval, error) {
	return nil, errNotReady
}
