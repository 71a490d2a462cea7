package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/store"
)

// handoff is a stored one-time handoff code.
type handoff struct {
	Parent string `json:"parent"` // portal session handle
	Host   string `json:"host"`
	Path   string `json:"path"`
}

func handoffKey(code string) string { return "identity/handoff/" + hashToken(code) }

// IssueHandoff returns a one-time code (HandoffTTL, single use) that lets
// host open an app session for the full portal session portalSessionID and
// then continue at path (a relative path; see SafeReturn). It refuses a
// pending session (ErrMFARequired) and a locked account (ErrLocked).
func (m *Sessions) IssueHandoff(ctx context.Context, portalSessionID, host, path string) (string, error) {
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
	raw, err := json.Marshal(handoff{Parent: s.Handle, Host: strings.ToLower(host), Path: path})
	if err != nil {
		return "", err
	}
	if err := m.d.Store.Set(ctx, handoffKey(code), raw, HandoffTTL); err != nil {
		return "", fmt.Errorf("store handoff: %w", err)
	}
	return code, nil
}

// RedeemHandoff consumes code on host and returns the new app session and
// the path to continue at. A code is refused (ErrNotFound) when unknown,
// used, expired, issued for another host, or its portal session has ended;
// a code presented on the wrong host is burnt.
func (m *Sessions) RedeemHandoff(ctx context.Context, code, host string) (*Session, string, error) {
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
