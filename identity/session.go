package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/store"
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
	// touchEvery is how stale LastSeen may get before a lookup refreshes it,
	// so that a busy session does not write to the store on every request.
	touchEvery = time.Minute
	// maxUserAgent bounds the stored User-Agent.
	maxUserAgent = 256
	// sessionIDBytes is the entropy of a session ID.
	sessionIDBytes = 32
)

// Session is one server-side session. A portal session is created by an SSO
// login and becomes full once a WebAuthn assertion (or first enrolment)
// completes; an app session belongs to one route host and is created from a
// portal session by a handoff code. An app session carries a copy of its
// portal session's identity; a step-up on the portal updates it, and
// revoking the portal session revokes it.
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

// Sessions keeps sessions in the store under "identity/session/<handle>"
// (the handle is the SHA-256 of the secret ID) with a per-user index of
// portal sessions, so that Revoke, RevokeAll and List work on every replica
// at once. Every update is a compare-and-swap, so a revoked session is
// never written back. It is safe for concurrent use.
type Sessions struct {
	d   Deps
	opt SessionOptions
}

// NewSessions returns a Sessions.
func NewSessions(d Deps, opt SessionOptions) (*Sessions, error) {
	d, err := d.check()
	if err != nil {
		return nil, err
	}
	if opt.MaxAge <= 0 {
		opt.MaxAge = DefaultSessionMaxAge
	}
	if opt.Idle <= 0 {
		opt.Idle = DefaultSessionIdle
	}
	return &Sessions{d: d, opt: opt}, nil
}

func sessionKey(handle string) string { return "identity/session/" + handle }

func userIndexPrefix(email string) string { return "identity/usersession/" + emailKey(email) + "/" }

func childPrefix(parent string) string { return "identity/child/" + parent + "/" }

// validHandle reports whether h looks like a handle (hex SHA-256).
func validHandle(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ttlFor is how long the store keeps rec from now: until it expires, goes
// idle, or (pending) runs out of time to finish WebAuthn.
func (m *Sessions) ttlFor(rec *Session, now time.Time) time.Duration {
	ttl := min(rec.Expires.Sub(now), m.opt.Idle)
	if rec.Parent == "" && rec.Pending() {
		ttl = min(ttl, rec.Created.Add(PendingTTL).Sub(now))
	}
	return ttl
}

// live reports whether rec may still be used at now.
func (m *Sessions) live(rec *Session, now time.Time) bool {
	if !now.Before(rec.Expires) || now.Sub(rec.LastSeen) >= m.opt.Idle {
		return false
	}
	if rec.Parent == "" && rec.Pending() && now.Sub(rec.Created) >= PendingTTL {
		return false
	}
	return true
}

// Start creates a pending portal session on host for a finished SSO login.
// It refuses a locked account (ErrLocked). The caller seals s.ID into the
// portal cookie.
func (m *Sessions) Start(ctx context.Context, l *Login, host string) (*Session, error) {
	if l == nil || l.Email == "" || host == "" {
		return nil, errors.New("identity: start session: missing login or host")
	}
	if err := refuseLocked(ctx, m.d.Store, l.Email); err != nil {
		if errors.Is(err, ErrLocked) {
			// A locked person signing in is worth an alert (audit's
			// locked rule): record the refusal.
			m.d.deny(ctx, EventSSOLogin, l.Email, audit.ReasonLocked, nil)
		}
		return nil, fmt.Errorf("start session: %w", err)
	}
	now := m.d.Now()
	c := clientFrom(ctx)
	ssoAt := l.At
	if ssoAt.IsZero() || ssoAt.After(now) {
		ssoAt = now
	}
	s := &Session{
		Host: strings.ToLower(host), Email: l.Email, Sub: l.Subject,
		Groups: slices.Clone(l.Groups), SSOAt: ssoAt,
		Created: now, LastSeen: now, Expires: now.Add(m.opt.MaxAge),
		UserAgent: truncate(c.UserAgent, maxUserAgent), Source: c.Source,
	}
	if err := m.create(ctx, s, now); err != nil {
		return nil, err
	}
	// A lock written while we created the session must win: look again.
	if err := refuseLocked(ctx, m.d.Store, l.Email); err != nil {
		_ = m.Revoke(ctx, s.Handle)
		return nil, fmt.Errorf("start session: %w", err)
	}
	return s, nil
}

// create gives s a fresh ID and handle and stores it (and, for a portal
// session, its index entry).
func (m *Sessions) create(ctx context.Context, s *Session, now time.Time) error {
	id, err := randomToken(sessionIDBytes)
	if err != nil {
		return err
	}
	s.ID, s.Handle = id, hashToken(id)
	raw := marshalSession(s)
	ttl := m.ttlFor(s, now)
	if ttl <= 0 {
		return fmt.Errorf("%w: session would already be expired", ErrNotFound)
	}
	index := userIndexPrefix(s.Email) + s.Handle
	if s.Parent != "" {
		index = childPrefix(s.Parent) + s.Handle
	}
	if err := m.d.Store.Set(ctx, index, nil, s.Expires.Sub(now)); err != nil {
		return fmt.Errorf("index session: %w", err)
	}
	ok, err := m.d.Store.SetNX(ctx, sessionKey(s.Handle), raw, ttl)
	if err != nil {
		return fmt.Errorf("store session: %w", err)
	}
	if !ok {
		return errors.New("identity: session ID collision")
	}
	return nil
}

// load reads the record behind handle, returning it and its raw bytes.
func (m *Sessions) load(ctx context.Context, handle string) (*Session, []byte, error) {
	if !validHandle(handle) {
		return nil, nil, ErrNotFound
	}
	raw, err := m.d.Store.Get(ctx, sessionKey(handle))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load session: %w", err)
	}
	s := Session{Handle: handle}
	if err := unmarshalSession(raw, &s); err != nil {
		return nil, nil, fmt.Errorf("decode session: %w", err)
	}
	return &s, raw, nil
}

// Lookup returns the live session with the given ID for host. It refuses
// (ErrNotFound) a session that is absent, revoked, expired, idle too long,
// or belongs to another host. It costs one store read; at most once a
// minute it also refreshes LastSeen (and, for an app session, its portal
// session's, which must still exist).
func (m *Sessions) Lookup(ctx context.Context, id, host string) (*Session, error) {
	if id == "" || len(id) > maxSessionID {
		return nil, ErrNotFound
	}
	now := m.d.Now()
	s, raw, err := m.load(ctx, hashToken(id))
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(s.Host, host) || !m.live(s, now) {
		return nil, ErrNotFound
	}
	if now.Sub(s.LastSeen) >= touchEvery {
		if s.Parent != "" {
			// Keep the portal session alive while its app is used; if it is
			// gone, this app session must go too.
			if _, err := m.update(ctx, s.Parent, nil, touch(now)); errors.Is(err, ErrNotFound) {
				_ = m.Revoke(ctx, s.Handle)
				return nil, ErrNotFound
			} else if err != nil {
				return nil, err
			}
		}
		if s, err = m.update(ctx, s.Handle, raw, touch(now)); err != nil {
			return nil, err
		}
	}
	s.ID = id
	return s, nil
}

// errUnchanged, returned by an update's fn, means the record needs no
// write: update returns it as it is.
var errUnchanged = errors.New("identity: record unchanged")

// touch refreshes LastSeen to now unless another request already did
// within touchEvery. Every request that misses the gate's cache at the
// same moment touches the same record: without this check each of them
// writes, they keep beating each other's compare-and-swap, and some run
// out of attempts (the 503s seen under load in bench/http).
func touch(now time.Time) func(*Session) error {
	return func(rec *Session) error {
		if now.Sub(rec.LastSeen) < touchEvery {
			return errUnchanged
		}
		rec.LastSeen = now
		return nil
	}
}

// update applies fn to the stored record behind handle with
// compare-and-swap, starting from raw (nil: read it first). A record that
// disappears meanwhile is ErrNotFound: revocation always wins. If fn
// returns errUnchanged, nothing is written.
func (m *Sessions) update(ctx context.Context, handle string, raw []byte, fn func(*Session) error) (*Session, error) {
	for attempt := 0; attempt < 8; attempt++ {
		if raw == nil {
			var err error
			if _, raw, err = m.load(ctx, handle); err != nil {
				return nil, err
			}
		}
		rec := Session{Handle: handle}
		if err := unmarshalSession(raw, &rec); err != nil {
			return nil, fmt.Errorf("decode session: %w", err)
		}
		now := m.d.Now()
		if !m.live(&rec, now) {
			return nil, ErrNotFound
		}
		if err := fn(&rec); errors.Is(err, errUnchanged) {
			return &rec, nil
		} else if err != nil {
			return nil, err
		}
		next := marshalSession(&rec)
		ttl := m.ttlFor(&rec, now)
		if ttl <= 0 {
			return nil, ErrNotFound
		}
		ok, err := m.d.Store.CompareAndSwap(ctx, sessionKey(handle), raw, next, ttl)
		if err != nil {
			return nil, fmt.Errorf("update session: %w", err)
		}
		if ok {
			return &rec, nil
		}
		raw = nil
	}
	return nil, errors.New("identity: session update kept conflicting")
}

// completeMFA records a WebAuthn assertion (or enrolment) at time at on the
// portal session s and its app sessions, and returns the updated portal
// session (with s.ID kept).
func (m *Sessions) completeMFA(ctx context.Context, s *Session, at time.Time) (*Session, error) {
	if s.Parent != "" {
		return nil, fmt.Errorf("%w: webauthn only on portal sessions", ErrForbidden)
	}
	if err := refuseLocked(ctx, m.d.Store, s.Email); err != nil {
		return nil, err
	}
	mark := func(rec *Session) error {
		if normEmail(rec.Email) != normEmail(s.Email) {
			return ErrForbidden
		}
		rec.MFAAt, rec.LastSeen = at, at
		return nil
	}
	out, err := m.update(ctx, s.Handle, nil, mark)
	if err != nil {
		return nil, err
	}
	// A step-up applies to the app sessions at once. One that misses it
	// (being created right now) keeps the older time: stricter, not looser.
	children, err := m.d.Store.List(ctx, childPrefix(s.Handle))
	if err != nil {
		m.d.Logger.WarnContext(ctx, "Failed to list app sessions for step-up.", "error", err)
	}
	for _, kv := range children {
		if _, err := m.update(ctx, lastSegment(kv.Key), nil, mark); err != nil && !errors.Is(err, ErrNotFound) {
			m.d.Logger.WarnContext(ctx, "Failed to carry step-up to an app session.", "error", err)
		}
	}
	out.ID = s.ID
	return out, nil
}

// lastSegment returns what follows the last "/" of a key.
func lastSegment(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
