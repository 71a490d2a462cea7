package sshgw

import (
	"context"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/identity"
)

// lockRecheckEvery is how often the live connections are checked against
// every lock in the store (identity.LockRecheckEvery says why).
const lockRecheckEvery = identity.LockRecheckEvery

// lockMatch returns whether a live connection falls under the lock r: the
// person's, the key's it authenticated with, or its target's.
func lockMatch(r identity.LockRef) func(*conn) bool {
	return func(c *conn) bool {
		a := c.auth.Load()
		if a == nil || r.Name == "" {
			return false
		}
		switch r.Kind {
		case identity.LockKey:
			return a.fp == r.Name
		case identity.LockTarget:
			return a.targetName() == r.Name
		default:
			return identity.PersonLock(c.email()) == r
		}
	}
}

// endLocked ends the live connections under the lock r and logs how many.
func (s *Server) endLocked(r identity.LockRef) int {
	n := s.closeAll(lockMatch(r), r.Refusal())
	if n > 0 {
		s.log.InfoContext(s.ctx, "Closed connections under a lock.", "lock", r.String(), "connections", n)
	}
	return n
}

// recheckLocks runs recheckOnce every lockRecheckEvery until Shutdown.
func (s *Server) recheckLocks() {
	defer s.wg.Done()
	t := time.NewTicker(lockRecheckEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.recheckOnce()
		}
	}
}

// recheckOnce reads every lock (one store List) and ends the live
// connections under any of them; it returns how many it ended. If the
// store cannot be read, the connections stay: each was proven when it was
// opened, and a new connection is refused while locks cannot be read
// (checkLocks).
func (s *Server) recheckOnce() int {
	ctx, cancel := context.WithTimeout(s.ctx, lockRecheckEvery)
	defer cancel()
	set, err := s.locks.All(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "Cannot read the locks to re-check live connections; keeping them.", "error", err)
		return 0
	}
	if set.Len() == 0 {
		return 0
	}
	hit := map[identity.LockRef]bool{}
	s.mu.Lock()
	for c := range s.live {
		if a := c.auth.Load(); a != nil {
			if r, ok := set.Holds(a.who.Email, a.fp, a.targetName()); ok {
				hit[r] = true
			}
		}
	}
	s.mu.Unlock()
	n := 0
	for r := range hit {
		n += s.endLocked(r)
	}
	return n
}

// checkLocks returns the refusal message and audit reason if the person
// (email), the key (fp) or the target is locked, or if the locks cannot be
// read (fail closed). Empty arguments are not checked.
func (s *Server) checkLocks(ctx context.Context, email, fp, target string) (msg, why string) {
	r, held, err := s.locks.Held(ctx, identity.PersonLock(email), identity.KeyLock(fp), identity.TargetLock(target))
	switch {
	case err != nil:
		return msgUnavailable, "lock check: " + err.Error()
	case held && r.Kind == identity.LockPerson:
		// The reason the alerter's locked rule raises on.
		return r.Refusal(), audit.ReasonLocked
	case held:
		return r.Refusal(), r.String() + " is locked"
	}
	return "", ""
}
