package identity

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/store"
)

// LockRecheckEvery is how often whoever holds live access (SSH
// connections, WebSockets) checks it against every lock in the store. A
// lock reaches every replica at once through LockChannel; this re-check
// catches a message the store dropped (Redis pub/sub keeps nothing for a
// subscriber that is reconnecting).
const LockRecheckEvery = 5 * time.Second

// LockChannel is the store channel on which Lock publishes the locked
// email, so that every replica ends that person's live SSH sessions.
const LockChannel = "lock"

// lockKey is where a lock lives; admin commands use the same key.
func lockKey(email string) string { return "lock/" + normEmail(email) }

// isLocked reports whether email is locked; a store error is returned so
// that callers fail closed.
func isLocked(ctx context.Context, st kvStore, email string) (bool, error) {
	_, err := st.Get(ctx, lockKey(email))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("read lock: %w", err)
	}
}

// refuseLocked returns ErrLocked (or the store error) unless email is free.
func refuseLocked(ctx context.Context, st kvStore, email string) error {
	locked, err := isLocked(ctx, st, email)
	if err != nil {
		return err
	}
	if locked {
		return ErrLocked
	}
	return nil
}

// Locks lock people, SSH keys and targets out: "lock/<email>" in the store
// (email lower-cased), and see LockRef for keys and targets.
type Locks struct {
	d        Deps
	sessions *Sessions
	keys     *KeyBindings
	// folded is set once All has folded unindexed locks into the index.
	folded atomic.Bool
}

// NewLocks returns Locks that also revoke sessions and unbind keys.
func NewLocks(d Deps, sessions *Sessions, keys *KeyBindings) (*Locks, error) {
	d, err := d.check()
	if err != nil {
		return nil, err
	}
	if sessions == nil || keys == nil {
		return nil, errors.New("identity: NewLocks needs sessions and key bindings")
	}
	return &Locks{d: d, sessions: sessions, keys: keys}, nil
}

// Lock locks email: it writes the lock, revokes every session, unbinds every
// SSH key, publishes email on LockChannel and audits it. by and reason are
// recorded in the audit log. The lock is written first, so nothing can log
// in between; every later step is attempted even if one fails, and the
// first error is returned.
func (l *Locks) Lock(ctx context.Context, email, by, reason string) error {
	email = normEmail(email)
	if err := PersonLock(email).valid(); err != nil {
		return err
	}
	if err := l.indexAdd(ctx, lockKey(email)); err != nil {
		return err
	}
	if err := l.d.Store.Set(ctx, lockKey(email), l.record(by, reason), 0); err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	// Again after the write: see Place.
	if err := l.indexAdd(ctx, lockKey(email)); err != nil {
		return err
	}
	nSess, errS := l.sessions.RevokeAll(ctx, email)
	nKeys, errK := l.keys.Unbind(ctx, email)
	errP := l.d.Store.Publish(ctx, LockChannel, []byte(email))
	errA := l.d.record(ctx, audit.Event{
		Type: EventLock, Actor: by, Resource: "user:" + email, Action: "lock",
		Decision: audit.Allow, Reason: reason,
		Details: map[string]string{"sessions_revoked": fmt.Sprint(nSess), "keys_unbound": fmt.Sprint(nKeys)},
	})
	return errors.Join(errS, errK, errP, errA)
}

// Unlock removes the lock on email.
func (l *Locks) Unlock(ctx context.Context, email, by string) error {
	email = normEmail(email)
	if err := l.indexRemove(ctx, lockKey(email)); err != nil {
		return err
	}
	if err := l.d.Store.Delete(ctx, lockKey(email)); err != nil {
		return fmt.Errorf("remove lock: %w", err)
	}
	return l.d.record(ctx, audit.Event{Type: EventUnlock, Actor: by, Resource: "user:" + email, Action: "unlock", Decision: audit.Allow})
}

// Locked reports whether email is locked. A store error is returned (the
// caller fails closed).
func (l *Locks) Locked(ctx context.Context, email string) (bool, error) {
	return isLocked(ctx, l.d.Store, email)
}
