package identity

import (
	"context"
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
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	ttl := m.ttlFor(s, now)
	if ttl <= 0 {
		return fmt.Errorf("%w: session would already be expired", ErrNotFound)
	}
	if s.Parent == "" {
		if err := m.d.Store.Set(ctx, userIndexPrefix(s.Email)+s.Handle, nil, s.Expires.Sub(now)); err != nil {
			return fmt.Errorf("index session: %w", err)
		}
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
	var s Session
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, nil, fmt.Errorf("decode session: %w", err)
	}
	return &s, raw, nil
}

// Lookup returns the live session with the given ID for host. It refuses
// (ErrNotFound) a session that is absent, revoked, expired, idle too long,
// or belongs to another host, and an app session whose portal session is
// gone. It refreshes LastSeen at most once a minute.
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
	var parent *Session
	var parentRaw []byte
	if s.Parent != "" {
		parent, parentRaw, err = m.load(ctx, s.Parent)
		if err != nil {
			return nil, err
		}
		if parent.Parent != "" || parent.Pending() || !m.live(parent, now) {
			return nil, ErrNotFound
		}
	}
	if now.Sub(s.LastSeen) >= touchEvery {
		if s, err = m.touch(ctx, s, raw, now); err != nil {
			return nil, err
		}
	}
	if parent != nil {
		if now.Sub(parent.LastSeen) >= touchEvery {
			if parent, err = m.touch(ctx, parent, parentRaw, now); err != nil {
				return nil, err
			}
		}
		s.inherit(parent)
	}
	s.ID = id
	return s, nil
}

// inherit copies the identity of the portal session p into the app session.
func (s *Session) inherit(p *Session) {
	s.Email, s.Sub, s.Groups = p.Email, p.Sub, slices.Clone(p.Groups)
	s.SSOAt, s.MFAAt = p.SSOAt, p.MFAAt
}

// touch stores s with LastSeen = now unless it changed (or was revoked)
// since raw was read.
func (m *Sessions) touch(ctx context.Context, s *Session, raw []byte, now time.Time) (*Session, error) {
	return m.update(ctx, s.Handle, raw, func(rec *Session) error {
		rec.LastSeen = now
		return nil
	})
}

// update applies fn to the stored record behind handle with
// compare-and-swap, starting from raw (nil: read it first). A record that
// disappears meanwhile is ErrNotFound: revocation always wins.
func (m *Sessions) update(ctx context.Context, handle string, raw []byte, fn func(*Session) error) (*Session, error) {
	for attempt := 0; attempt < 8; attempt++ {
		if raw == nil {
			var err error
			if _, raw, err = m.load(ctx, handle); err != nil {
				return nil, err
			}
		}
		var rec Session
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, fmt.Errorf("decode session: %w", err)
		}
		now := m.d.Now()
		if !m.live(&rec, now) {
			return nil, ErrNotFound
		}
		if err := fn(&rec); err != nil {
			return nil, err
		}
		next, err := json.Marshal(&rec)
		if err != nil {
			return nil, err
		}
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
// portal session s and returns the updated session (with s.ID kept).
func (m *Sessions) completeMFA(ctx context.Context, s *Session, at time.Time) (*Session, error) {
	if s.Parent != "" {
		return nil, fmt.Errorf("%w: webauthn only on portal sessions", ErrForbidden)
	}
	if err := refuseLocked(ctx, m.d.Store, s.Email); err != nil {
		return nil, err
	}
	out, err := m.update(ctx, s.Handle, nil, func(rec *Session) error {
		if normEmail(rec.Email) != normEmail(s.Email) {
			return ErrForbidden
		}
		rec.MFAAt, rec.LastSeen = at, at
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.ID = s.ID
	return out, nil
}

// Revoke ends the session with the given handle and, for a portal session,
// every app session made from it. Revoking an absent session is not an
// error.
func (m *Sessions) Revoke(ctx context.Context, handle string) error {
	if !validHandle(handle) {
		return nil
	}
	raw, err := m.d.Store.GetDel(ctx, sessionKey(handle))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	var s Session
	if json.Unmarshal(raw, &s) == nil {
		if s.Parent == "" {
			if err := m.d.Store.Delete(ctx, userIndexPrefix(s.Email)+handle); err != nil {
				m.d.Logger.WarnContext(ctx, "Failed to drop session index entry.", "error", err)
			}
		}
		_ = m.d.record(ctx, audit.Event{Type: EventSessionEnd, Actor: s.Email, Session: handle[:16], Action: "revoke", Decision: audit.Allow})
	}
	return nil
}

// RevokeAll ends every session of email and returns how many it ended.
func (m *Sessions) RevokeAll(ctx context.Context, email string) (int, error) {
	kvs, err := m.d.Store.List(ctx, userIndexPrefix(email))
	if err != nil {
		return 0, fmt.Errorf("list sessions: %w", err)
	}
	n := 0
	var errs []error
	for _, kv := range kvs {
		handle := kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]
		if _, err := m.d.Store.GetDel(ctx, sessionKey(handle)); err == nil {
			n++
		} else if !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		if err := m.d.Store.Delete(ctx, kv.Key); err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// List returns email's live portal sessions, newest first. Their ID is
// empty; use Handle to revoke one.
func (m *Sessions) List(ctx context.Context, email string) ([]Session, error) {
	kvs, err := m.d.Store.List(ctx, userIndexPrefix(email))
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	now := m.d.Now()
	var out []Session
	for _, kv := range kvs {
		s, _, err := m.load(ctx, kv.Key[strings.LastIndexByte(kv.Key, '/')+1:])
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m.live(s, now) && normEmail(s.Email) == normEmail(email) {
			out = append(out, *s)
		}
	}
	slices.SortFunc(out, func(a, b Session) int { return b.Created.Compare(a.Created) })
	return out, nil
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
