package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/portal"
)

// closeWebSockets ends the live WebSockets of a person who signed out or
// was locked: a tunnel opened before must not outlive the session.
func (s *server) closeWebSockets(email string) {
	if s.front == nil {
		return
	}
	if n := s.front.CloseWebSockets(email); n > 0 {
		s.logger.Info("Closed the WebSockets of a person whose session ended.", "user", email, "count", n)
	}
}

// forgetAppSessions drops a locked person's sessions from every app gate's
// cache on this replica, so that their next request asks the store (which
// refuses them) instead of riding the cache for up to its TTL.
func (s *server) forgetAppSessions(email string) {
	w := s.web.Load()
	if w == nil {
		return
	}
	for _, h := range w.Apps {
		if a, ok := h.(*portal.App); ok {
			a.ForgetUser(email)
		}
	}
}

// onLockMessage acts on a lock published on any replica (the SSH bastion
// listens on the same channel for its connections): a person's lock ends
// their WebSockets and their cached app sessions here. Key and target
// locks concern SSH only.
func (s *server) onLockMessage(m []byte) {
	r := identity.ParseLockMessage(m)
	if r.Kind != identity.LockPerson {
		return
	}
	s.forgetAppSessions(r.Name)
	s.closeWebSockets(r.Name)
}

// recheckWebSocketLocks ends the WebSockets of every locked person every
// identity.LockRecheckEvery until ctx ends: a lock message this replica
// missed while its subscription reconnected must not leave a locked
// person's tunnel open. (Cached app sessions need no re-check: a lock
// revokes the sessions in the store and the cache asks it again within its
// one-second TTL.)
func (s *server) recheckWebSocketLocks(ctx context.Context, locks *identity.Locks) {
	if s.front == nil || locks == nil {
		return
	}
	recheckLocks(ctx, locks, s.closeWebSockets, s.logger)
}

// lockLister reads every lock (identity.Locks).
type lockLister interface {
	All(ctx context.Context) (identity.LockSet, error)
}

// recheckLocks calls end for every locked person every
// identity.LockRecheckEvery until ctx ends. A store it cannot read ends
// nothing (what is open was admitted when opened), as the SSH re-check
// does; the next tick tries again.
func recheckLocks(ctx context.Context, locks lockLister, end func(email string), logger *slog.Logger) {
	t := time.NewTicker(identity.LockRecheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		set, err := locks.All(ctx)
		if err != nil {
			logger.ErrorContext(ctx, "Cannot read the locks to re-check WebSockets; keeping them.", "error", err)
			continue
		}
		for _, email := range set.People() {
			end(email)
		}
	}
}

// closeWebSocketsOnLock runs onLockMessage for every lock published on any
// replica until ctx ends.
func (s *server) closeWebSocketsOnLock(ctx context.Context) {
	if s.front == nil {
		return
	}
	for ctx.Err() == nil {
		msgs, err := s.store.Subscribe(ctx, identity.LockChannel)
		if err != nil {
			s.logger.ErrorContext(ctx, "Cannot subscribe to the lock channel; retrying.", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for m := range msgs {
			s.onLockMessage(m)
		}
	}
}
