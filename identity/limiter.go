package identity

import (
	"context"
	"time"
)

// Limit is at most N events per fixed Window.
type Limit struct {
	N      int64
	Window time.Duration
}

// Default limits for login, assertion and approval endpoints.
var (
	DefaultPerSource = Limit{N: 20, Window: time.Minute}
	DefaultPerUser   = Limit{N: 10, Window: time.Minute}
)

// Limiter counts attempts in fixed windows in the store (so all replicas
// share the counts) per source address (IPv6 per /64) and per user.
type Limiter struct {
	d Deps
	// PerSource and PerUser are the limits; zero values take the defaults.
	PerSource, PerUser Limit
}

// NewLimiter returns a Limiter with the default limits.
func NewLimiter(d Deps) (*Limiter, error) {
	return nil, errNotReady
}

// Allow counts one attempt at endpoint (e.g. "login", "assert", "approve")
// from source and, if user is not empty, by user. It returns nil, or an
// error wrapping ErrRateLimited together with how long to wait. A store
// failure is returned as an error too: callers fail closed. Refusals are
// audited.
func (l *Limiter) Allow(ctx context.Context, endpoint, source, user string) (retryAfter time.Duration, err error) {
	return 0, errNotReady
}
