package identity

import (
	"context"
	"time"

	"github.com/gatehouse-dev/gatehouse/authz"
)

// KeyBindings bind an SSH public key fingerprint to a person after an
// approval, until the MFA age runs out. Keys: "identity/keybind/<fp>" and a
// per-user index for Unbind.
type KeyBindings struct {
	d Deps
}

// NewKeyBindings returns KeyBindings.
func NewKeyBindings(d Deps) (*KeyBindings, error) {
	return nil, errNotReady
}

// Bind binds fingerprint to s for ttl (which must be positive).
func (k *KeyBindings) Bind(ctx context.Context, fingerprint string, s authz.Subject, ttl time.Duration) error {
	return errNotReady
}

// Lookup returns the subject bound to fingerprint, or an error wrapping
// store.ErrNotFound (and ErrNotFound) if none.
func (k *KeyBindings) Lookup(ctx context.Context, fingerprint string) (authz.Subject, error) {
	return authz.Subject{}, errNotReady
}

// Unbind removes every key bound to email and returns how many.
func (k *KeyBindings) Unbind(ctx context.Context, email string) (int, error) {
	return 0, errNotReady
}
