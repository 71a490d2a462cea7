package identity

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/store"
)

// HandoffNonceTTL is how long the app host should keep the nonce cookie of
// a sign-in trip: long enough for SSO, enrolment and a key touch (a pending
// session lives PendingTTL), short enough that a stale one is gone.
const HandoffNonceTTL = PendingTTL + 5*time.Minute

// handoffBindingLen is the length of HandoffBinding's hex SHA-256.
const handoffBindingLen = 64

// handoff is a stored one-time handoff code.
type handoff struct {
	Parent string `json:"parent"` // portal session handle
	Host   string `json:"host"`
	Path   string `json:"path"`
	// Bind is HandoffBinding of the nonce of the browser that started the
	// trip.
	Bind string `json:"bind"`
}

func handoffKey(code string) string { return "identity/handoff/" + hashToken(code) }

// NewHandoffNonce returns a fresh random nonce (256 bits, URL-safe) for
// one sign-in trip. The app host that sends a person to the portal sets it
// as a short-lived (HandoffNonceTTL), host-only, Secure, HttpOnly cookie
// (a "__Host-" name, so a sibling host cannot plant one) and puts
// HandoffBinding(nonce) into the trip's URL; the portal issues the handoff
// code with IssueBoundHandoff, and the app host redeems it with
// RedeemBoundHandoff and the nonce from its cookie. A code then works only
// in the browser that started the trip: one opened in another browser
// (login CSRF) finds no nonce, or the wrong one.
func NewHandoffNonce() (string, error) {
	return randomToken(32)
}

// HandoffBinding returns the value that binds a handoff code to nonce: its
// hex SHA-256. Only the binding travels through the portal's URLs, so the
// nonce itself never shows in a URL, a log or a Referer.
func HandoffBinding(nonce string) string {
	return hashToken(nonce)
}

// IssueBoundHandoff returns a one-time code (HandoffTTL, single use) that
// lets host open an app session for the full portal session
// portalSessionID and then continue at path (a relative path; see
// SafeReturn), in the browser that holds the nonce whose HandoffBinding is
// binding (64 hex digits; anything else is ErrForbidden). Only
// RedeemBoundHandoff with that nonce redeems it. It refuses a pending
// session (ErrMFARequired) and a locked account (ErrLocked).
func (m *Sessions) IssueBoundHandoff(ctx context.Context, portalSessionID, host, path, binding string) (string, error) {
	if len(binding) != handoffBindingLen || strings.Trim(binding, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: malformed handoff binding", ErrForbidden)
	}
	if host == "" {
		return "", errors.New("identity: handoff: empty host")
	}
	if path == "" {
		path = "/"
	}
	if p, ok := SafeReturn(path, nil); !ok || p[0] != '/' {
		return "", fmt.Errorf("%w: handoff path is not a safe relative path", ErrForbidden)
	}
	if portalSessionID == "" || len(portalSessionID) > maxSessionID {
		return "", ErrNotFound
	}
	s, _, err := m.load(ctx, hashToken(portalSessionID))
	if err != nil {
		return "", err
	}
	if s.Parent != "" || !m.live(s, m.d.Now()) {
		return "", ErrNotFound
	}
	if s.Pending() {
		return "", ErrMFARequired
	}
	if err := refuseLocked(ctx, m.d.Store, s.Email); err != nil {
		return "", err
	}
	code, err := randomToken(32)
	if err != nil {
		return "", err
	}
	raw, err := json.Marshal(handoff{Parent: s.Handle, Host: strings.ToLower(host), Path: path, Bind: binding})
	if err != nil {
		return "", err
	}
	if err := m.d.Store.Set(ctx, handoffKey(code), raw, HandoffTTL); err != nil {
		return "", fmt.Errorf("store handoff: %w", err)
	}
	return code, nil
}

// RedeemBoundHandoff consumes code on host in the browser that presents
// nonce (the value of its trip cookie) and returns the new app session and
// the path to continue at. A code is refused (ErrNotFound) when unknown,
// used, expired, issued for another host, not bound to a browser, bound to
// another nonce or none is given, or its portal session has ended. Every
// refused code is burnt, so a wrong nonce cannot be retried.
func (m *Sessions) RedeemBoundHandoff(ctx context.Context, code, host, nonce string) (*Session, string, error) {
	if code == "" || len(code) > 128 {
		return nil, "", ErrNotFound
	}
	raw, err := m.d.Store.GetDel(ctx, handoffKey(code))
	if errors.Is(err, store.ErrNotFound) {
		m.d.deny(ctx, EventHandoff, "", "unknown, used or expired handoff code", map[string]string{"host": truncate(host, 253)})
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("redeem handoff: %w", err)
	}
	var h handoff
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, "", fmt.Errorf("decode handoff: %w", err)
	}
	if !strings.EqualFold(h.Host, host) {
		m.d.deny(ctx, EventHandoff, "", "handoff code presented on another host", map[string]string{"host": truncate(host, 253), "want_host": h.Host})
		return nil, "", ErrNotFound
	}
	if why := handoffBrowserMismatch(h.Bind, nonce); why != "" {
		m.d.deny(ctx, EventHandoff, "", why, map[string]string{"host": truncate(host, 253)})
		return nil, "", ErrNotFound
	}
	now := m.d.Now()
	p, _, err := m.load(ctx, h.Parent)
	if err != nil {
		return nil, "", err
	}
	if p.Parent != "" || p.Pending() || !m.live(p, now) {
		return nil, "", ErrNotFound
	}
	if err := refuseLocked(ctx, m.d.Store, p.Email); err != nil {
		return nil, "", err
	}
	c := clientFrom(ctx)
	s := &Session{
		Parent: p.Handle, Host: h.Host, Email: p.Email, Sub: p.Sub, Groups: slices.Clone(p.Groups),
		SSOAt: p.SSOAt, MFAAt: p.MFAAt, Created: now, LastSeen: now, Expires: p.Expires,
		UserAgent: truncate(c.UserAgent, maxUserAgent), Source: c.Source,
	}
	if err := m.create(ctx, s, now); err != nil {
		return nil, "", err
	}
	// Revoke deletes the portal session before it lists its app sessions,
	// and we indexed ours before looking at the portal session again: one of
	// us sees the other, so a revocation racing with us always wins.
	if _, _, err := m.load(ctx, p.Handle); err != nil {
		_ = m.Revoke(ctx, s.Handle)
		return nil, "", ErrNotFound
	}
	if err := m.d.record(ctx, audit.Event{Type: EventHandoff, Actor: s.Email, Resource: "host:" + h.Host, Session: s.Handle[:16], Decision: audit.Allow}); err != nil {
		_ = m.Revoke(ctx, s.Handle)
		return nil, "", err
	}
	return s, h.Path, nil
}

// handoffBrowserMismatch returns why a code with binding bind may not be
// redeemed with nonce ("" when it may).
func handoffBrowserMismatch(bind, nonce string) string {
	switch {
	case bind == "":
		// Only a code stored before handoffs were bound (an upgrade
		// within HandoffTTL) has none: refuse it.
		return "handoff code not bound to a browser"
	case nonce == "" || len(nonce) > 128:
		return "handoff code presented without its browser's nonce (another browser?)"
	case subtle.ConstantTimeCompare([]byte(HandoffBinding(nonce)), []byte(bind)) != 1:
		return "handoff code presented with another browser's nonce"
	}
	return ""
}
