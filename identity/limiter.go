package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
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
	// Set them before first use.
	PerSource, PerUser Limit
}

// NewLimiter returns a Limiter with the default limits.
func NewLimiter(d Deps) (*Limiter, error) {
	d, err := d.check()
	if err != nil {
		return nil, err
	}
	return &Limiter{d: d, PerSource: DefaultPerSource, PerUser: DefaultPerUser}, nil
}

// Allow counts one attempt at endpoint (e.g. "login", "assert", "approve")
// from source and, if user is not empty, by user. It returns nil, or an
// error wrapping ErrRateLimited together with how long to wait. A store
// failure is returned as an error too: callers fail closed. The first
// refusal in each window is audited.
func (l *Limiter) Allow(ctx context.Context, endpoint, source, user string) (retryAfter time.Duration, err error) {
	now := l.d.Now()
	src := SourceKey(source)
	if wait, err := l.count(ctx, now, withDefault(l.PerSource, DefaultPerSource), endpoint, "src/"+src); err != nil || wait > 0 {
		if wait > 0 {
			err = fmt.Errorf("%w: %s from %s", ErrRateLimited, endpoint, src)
		}
		return wait, err
	}
	if user == "" {
		return 0, nil
	}
	wait, err := l.count(ctx, now, withDefault(l.PerUser, DefaultPerUser), endpoint, "user/"+emailKey(user))
	if wait > 0 {
		err = fmt.Errorf("%w: %s by user", ErrRateLimited, endpoint)
	}
	return wait, err
}

// count increments the window counter for who and returns how long to wait
// if it is over the limit (zero when allowed).
func (l *Limiter) count(ctx context.Context, now time.Time, lim Limit, endpoint, who string) (time.Duration, error) {
	win := lim.Window.Nanoseconds()
	idx := now.UnixNano() / win
	key := fmt.Sprintf("identity/rl/%s/%s/%d", endpoint, who, idx)
	n, err := l.d.Store.Incr(ctx, key, lim.Window+time.Second)
	if err != nil {
		return 0, fmt.Errorf("rate limit: %w", err)
	}
	if n <= lim.N {
		return 0, nil
	}
	wait := time.Duration((idx+1)*win - now.UnixNano())
	if n == lim.N+1 {
		_ = l.d.record(ctx, audit.Event{Type: EventRateLimit, Action: endpoint, Decision: audit.Deny,
			Reason: "too many attempts", Details: map[string]string{"key": who, "limit": fmt.Sprint(lim.N), "window": lim.Window.String()}})
	}
	return max(wait, time.Second), nil
}

// withDefault returns l, or def when l is unusable.
func withDefault(l, def Limit) Limit {
	if l.N <= 0 || l.Window <= 0 {
		return def
	}
	return l
}
