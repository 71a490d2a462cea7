package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/store"
)

// RevokeChannel is the store channel on which every revoked session's
// handle is published, so that a replica caching lookups can drop it at
// once.
const RevokeChannel = "session/revoke"

// announce publishes a revoked handle; a failure is only logged, because
// the revocation itself already happened in the store.
func (m *Sessions) announce(ctx context.Context, handle string) {
	if err := m.d.Store.Publish(ctx, RevokeChannel, []byte(handle)); err != nil {
		m.d.Logger.WarnContext(ctx, "Failed to announce a session revocation.", "error", err)
	}
}

// Revoke ends the session with the given handle and, for a portal session,
// every app session made from it. Revoking an absent session is not an
// error. The record goes first, then the app sessions listed under it, so
// that a concurrent RedeemHandoff cannot leave one behind.
func (m *Sessions) Revoke(ctx context.Context, handle string) error {
	if !validHandle(handle) {
		return nil
	}
	raw, err := m.d.Store.GetDel(ctx, sessionKey(handle))
	if errors.Is(err, store.ErrNotFound) {
		// It may have expired while app sessions live on: end those.
		_, err := m.revokeChildren(ctx, handle)
		return err
	}
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	var s Session
	if err := unmarshalSession(raw, &s); err != nil {
		return fmt.Errorf("decode session: %w", err)
	}
	m.announce(ctx, handle)
	var errs []error
	if s.Parent == "" {
		errs = append(errs, m.d.Store.Delete(ctx, userIndexPrefix(s.Email)+handle))
		_, err := m.revokeChildren(ctx, handle)
		errs = append(errs, err)
	} else {
		errs = append(errs, m.d.Store.Delete(ctx, childPrefix(s.Parent)+handle))
	}
	_ = m.d.record(ctx, audit.Event{Type: EventSessionEnd, Actor: s.Email, Session: handle[:16], Resource: "host:" + s.Host, Action: "revoke", Decision: audit.Allow})
	return errors.Join(errs...)
}

// revokeChildren ends every app session made from the portal session
// parent and returns how many were live.
func (m *Sessions) revokeChildren(ctx context.Context, parent string) (int, error) {
	kvs, err := m.d.Store.List(ctx, childPrefix(parent))
	if err != nil {
		return 0, fmt.Errorf("list app sessions: %w", err)
	}
	n := 0
	var errs []error
	for _, kv := range kvs {
		if _, err := m.d.Store.GetDel(ctx, sessionKey(lastSegment(kv.Key))); err == nil {
			n++
			m.announce(ctx, lastSegment(kv.Key))
		} else if !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, m.d.Store.Delete(ctx, kv.Key))
	}
	return n, errors.Join(errs...)
}

// RevokeAll ends every session of email (portal sessions and their app
// sessions) and returns how many portal sessions it ended.
func (m *Sessions) RevokeAll(ctx context.Context, email string) (int, error) {
	kvs, err := m.d.Store.List(ctx, userIndexPrefix(email))
	if err != nil {
		return 0, fmt.Errorf("list sessions: %w", err)
	}
	n := 0
	var errs []error
	for _, kv := range kvs {
		handle := lastSegment(kv.Key)
		if _, err := m.d.Store.GetDel(ctx, sessionKey(handle)); err == nil {
			n++
			m.announce(ctx, handle)
		} else if !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		if _, err := m.revokeChildren(ctx, handle); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, m.d.Store.Delete(ctx, kv.Key))
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
		s, _, err := m.load(ctx, lastSegment(kv.Key))
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
