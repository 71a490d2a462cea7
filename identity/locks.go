package identity

import "context"

// LockChannel is the store channel on which Lock publishes the locked
// email, so that every replica ends that person's live SSH sessions.
const LockChannel = "lock"

// Locks lock people out: "lock/<email>" in the store.
type Locks struct {
	d Deps
}

// NewLocks returns Locks that also revoke sessions and unbind keys.
func NewLocks(d Deps, sessions *Sessions, keys *KeyBindings) (*Locks, error) {
	return nil, errNotReady
}

// Lock locks email: it writes the lock, revokes every session, unbinds every
// SSH key, publishes email on LockChannel and audits it. by and reason are
// recorded in the audit log.
func (l *Locks) Lock(ctx context.Context, email, by, reason string) error {
	return errNotReady
}

// Unlock removes the lock on email.
func (l *Locks) Unlock(ctx context.Context, email, by string) error {
	return errNotReady
}

// Locked reports whether email is locked. A store error is returned (the
// caller fails closed).
func (l *Locks) Locked(ctx context.Context, email string) (bool, error) {
	return false, errNotReady
}
