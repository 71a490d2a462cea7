// Package identity answers "who is this?" for Gatehouse. It owns every
// security decision about people: the OIDC login (authorization code with
// PKCE, state and nonce), WebAuthn enrolment and assertion, server-side
// sessions and their encrypted per-host cookies, one-time handoff codes,
// safe return URLs, rate limits, and the SSH side's connection-bound
// approvals, key bindings and account locks.
//
// Everything is kept in a store (see package store) under keys prefixed
// "identity/", except locks, which live under "lock/<email>",
// "lock/key/<fingerprint>" and "lock/target/<name>" (with an index in
// "lockindex" for the periodic re-check) so that the admin commands can
// write them. Secrets that a store dump could turn
// into access (session IDs, handoff codes, invite tokens) are kept only as
// SHA-256 hashes in keys. Every component takes a Deps; the HTTP pages that
// drive the ceremonies live in package portal.
package identity

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/store"
)

// kvStore is the subset of store.Store that identity uses.
type kvStore interface {
	Get(ctx context.Context, key string) ([]byte, error)
	GetMany(ctx context.Context, keys ...string) ([][]byte, error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error)
	GetDel(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
	List(ctx context.Context, prefix string) ([]store.KV, error)
	Publish(ctx context.Context, channel string, msg []byte) error
	Subscribe(ctx context.Context, channel string) (<-chan []byte, error)
}

var _ kvStore = store.Store(nil)

// auditLog is the subset of *audit.Log that identity uses.
type auditLog interface {
	Log(ctx context.Context, e audit.Event) error
}

// Deps are the dependencies every identity component shares.
type Deps struct {
	// Store keeps all state. Required.
	Store kvStore
	// Audit receives logins, failures, enrolments, assertions, cloned-key
	// refusals, approvals and locks. Required: identity fails closed when an
	// event cannot be recorded for a decision that grants access.
	Audit auditLog
	// Logger receives operational messages (never secrets). If nil, logs
	// are discarded.
	Logger *slog.Logger
	// Now returns the current time; if nil, time.Now is used.
	Now func() time.Time
	// Secrets seals the cookie key ring in the store. NewCodec requires it;
	// the other components keep no keys.
	Secrets *secrets.Keyring
}

// check validates d and fills its defaults.
func (d Deps) check() (Deps, error) {
	if d.Store == nil {
		return d, errors.New("identity: Deps.Store is required")
	}
	if d.Audit == nil {
		return d, errors.New("identity: Deps.Audit is required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d, nil
}

// Errors callers distinguish. Each is returned wrapped; test with errors.Is.
var (
	// ErrNotFound: the session, code, approval, user or credential does not
	// exist, was already used, or has expired.
	ErrNotFound = errors.New("identity: not found or expired")
	// ErrForbidden: the request is well-formed but the rules refuse it
	// (wrong host, wrong flow cookie, enrolment window passed, ...).
	ErrForbidden = errors.New("identity: forbidden")
	// ErrLocked: the person's account is locked.
	ErrLocked = errors.New("identity: account locked")
	// ErrClonedKey: an assertion's signature counter did not advance past
	// the stored one, so the authenticator may have been cloned. The
	// assertion is refused and audited; callers show a generic failure.
	ErrClonedKey = errors.New("identity: authenticator counter regression (possible cloned key)")
	// ErrLastKey: removing the person's last security key is refused.
	ErrLastKey = errors.New("identity: cannot remove the last security key")
	// ErrMFARequired: the operation needs a (fresh) WebAuthn assertion.
	ErrMFARequired = errors.New("identity: webauthn assertion required")
	// ErrRateLimited: too many attempts; see the returned retry-after.
	ErrRateLimited = errors.New("identity: rate limited")
	// ErrApprovalDenied: the person denied the SSH approval.
	ErrApprovalDenied = errors.New("identity: approval denied")
	// ErrApprovalMismatch: an approval was presented on a connection whose
	// session hash or key fingerprint differs from the one it was made for.
	ErrApprovalMismatch = errors.New("identity: approval bound to another connection")
)
