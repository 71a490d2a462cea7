package identity

import (
	"context"
	"time"

	"github.com/gatehouse-dev/gatehouse/authz"
)

// Session lifetimes (defaults for SessionOptions).
const (
	// DefaultSessionMaxAge is a session's absolute lifetime.
	DefaultSessionMaxAge = 12 * time.Hour
	// DefaultSessionIdle ends a session unused for this long.
	DefaultSessionIdle = time.Hour
	// PendingTTL is how long a session may stay pending (SSO done, WebAuthn
	// not yet) before it is dropped.
	PendingTTL = 10 * time.Minute
	// HandoffTTL is the lifetime of a one-time handoff code.
	HandoffTTL = 60 * time.Second
)

// Session is one server-side session. A portal session is created by an SSO
// login and becomes full once a WebAuthn assertion (or first enrolment)
// completes; an app session belongs to one route host and is created from a
// portal session by a handoff code. App sessions take their identity and
// MFA time from their portal session at every lookup and end the moment it
// is revoked.
type Session struct {
	// ID is the secret session ID (the cookie's content). It is set only on
	// sessions returned by Start, Lookup and RedeemHandoff; it is never
	// stored (the store keys sessions by its hash) nor listed.
	ID string `json:"-"`
	// Handle is a non-secret identifier for listing and revoking.
	Handle string `json:"handle"`
	// Parent is the portal session's handle for an app session, "" for a
	// portal session.
	Parent string `json:"parent,omitempty"`
	// Host is the host the session's cookie belongs to.
	Host   string   `json:"host"`
	Email  string   `json:"email"`
	Sub    string   `json:"sub,omitempty"` // the IdP's "sub"
	Groups []string `json:"groups,omitempty"`
	// SSOAt is the time of the SSO login.
	SSOAt time.Time `json:"sso_at"`
	// MFAAt is the time of the last WebAuthn assertion or enrolment; zero
	// means the session is still pending.
	MFAAt     time.Time `json:"mfa_at,omitzero"`
	Created   time.Time `json:"created"`
	LastSeen  time.Time `json:"last_seen"`
	Expires   time.Time `json:"expires"` // absolute end
	UserAgent string    `json:"ua,omitempty"`
	Source    string    `json:"source,omitempty"`
}

// Pending reports whether the session still needs a WebAuthn assertion.
func (s *Session) Pending() bool { return s.MFAAt.IsZero() }

// Subject returns the identity authz decides on. A pending session has a
// zero MFAAt, which authz treats as "no MFA".
func (s *Session) Subject() authz.Subject {
	return authz.Subject{Email: s.Email, Groups: append([]string(nil), s.Groups...), MFAAt: s.MFAAt}
}

// SessionOptions tunes Sessions; zero values take the defaults.
type SessionOptions struct {
	MaxAge time.Duration // absolute lifetime; zero: DefaultSessionMaxAge
	Idle   time.Duration // idle timeout; zero: DefaultSessionIdle
}

// Sessions keeps sessions in the store under "identity/session/<hash>" with
// a per-user index, so that Revoke, RevokeAll and List work on every
// replica at once. It is safe for concurrent use.
type Sessions struct {
	d   Deps
	opt SessionOptions
}

// NewSessions returns a Sessions.
func NewSessions(d Deps, opt SessionOptions) (*Sessions, error) {
	return nil, errNotReady
}

// Start creates a pending portal session on host for a finished SSO login.
// It refuses a locked account (ErrLocked). The caller seals s.ID into the
// portal cookie.
func (m *Sessions) Start(ctx context.Context, l *Login, host string) (*Session, error) {
	return nil, errNotReady
}

// Lookup returns the live session with the given ID for host. It refuses
// (ErrNotFound) a session that is absent, revoked, expired, idle too long,
// or belongs to another host, and an app session whose portal session is
// gone. It refreshes LastSeen at most once a minute.
func (m *Sessions) Lookup(ctx context.Context, id, host string) (*Session, error) {
	return nil, errNotReady
}

// Revoke ends the session with the given handle and, for a portal session,
// every app session made from it. Revoking an absent session is not an
// error.
func (m *Sessions) Revoke(ctx context.Context, handle string) error {
	return errNotReady
}

// RevokeAll ends every session of email and returns how many it ended.
func (m *Sessions) RevokeAll(ctx context.Context, email string) (int, error) {
	return 0, errNotReady
}

// List returns email's live portal sessions, newest first.
func (m *Sessions) List(ctx context.Context, email string) ([]Session, error) {
	return nil, errNotReady
}

// IssueHandoff returns a one-time code (HandoffTTL, single use) that lets
// host open an app session for the full portal session portalSessionID and
// then continue at path. It refuses a pending session (ErrMFARequired).
func (m *Sessions) IssueHandoff(ctx context.Context, portalSessionID, host, path string) (string, error) {
	return "", errNotReady
}

// RedeemHandoff consumes code on host and returns the new app session and
// the path to continue at. A code is refused (ErrNotFound) when unknown,
// used, expired, issued for another host, or its portal session has ended.
func (m *Sessions) RedeemHandoff(ctx context.Context, code, host string) (*Session, string, error) {
	return nil, "", errNotReady
}
