package identity

import (
	"context"
	"time"
)

// Cookie key ring timing.
const (
	// CookieKeyRotation is how often a new cookie key is made.
	CookieKeyRotation = 24 * time.Hour
	// MaxCookieLen is the longest cookie value Open accepts.
	MaxCookieLen = 256
)

// Codec seals session IDs into cookie values with AES-256-GCM. The cookie
// name and host are additional data, so a value sealed for one host or
// cookie is refused on another. Keys live in the store (shared by all
// replicas) and rotate every CookieKeyRotation; older keys are accepted for
// the session maximum lifetime. It is safe for concurrent use.
type Codec struct {
	d Deps
}

// NewCodec loads (or creates) the key ring. maxAge is the longest a cookie
// stays valid (use the session absolute lifetime); zero means
// DefaultSessionMaxAge.
func NewCodec(ctx context.Context, d Deps, maxAge time.Duration) (*Codec, error) {
	return nil, errNotReady
}

// Seal returns the cookie value for sessionID on host under cookie name.
// It uses the newest key; when that key is older than CookieKeyRotation it
// first rotates (or picks up another replica's rotation) from the store.
func (c *Codec) Seal(name, host, sessionID string) (string, error) {
	return "", errNotReady
}

// Open returns the session ID sealed in value, or an error if the value is
// malformed, forged, tampered, sealed for another name or host, sealed with
// a retired key, or older than the maximum age. It never panics. An unknown
// key ID makes it reload the ring from the store (at most once a second).
func (c *Codec) Open(name, host, value string) (string, error) {
	return "", errNotReady
}

// Refresh reloads the key ring from the store and rotates it when due. Seal
// and Open call it lazily; a server may also call it periodically.
func (c *Codec) Refresh(ctx context.Context) error {
	return errNotReady
}
