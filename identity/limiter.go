package identity

import (
	"context"
	"fmt"
	"strconv"
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
	if wait, err := l.count(ctx, now, l.PerSource.OrDefault(DefaultPerSource), endpoint, "src/"+src); err != nil || wait > 0 {
		if wait > 0 {
			err = fmt.Errorf("%w: %s from %s", ErrRateLimited, endpoint, src)
		}
		return wait, err
	}
	if user == "" {
		return 0, nil
	}
	wait, err := l.count(ctx, now, l.PerUser.OrDefault(DefaultPerUser), endpoint, "user/"+emailKey(user))
	if wait > 0 {
		err = fmt.Errorf("%w: %s by user", ErrRateLimited, endpoint)
	}
	return wait, err
}

// count increments the window counter for who and returns how long to wait
// if it is over the limit (zero when allowed).
func (l *Limiter) count(ctx context.Context, now time.Time, lim Limit, endpoint, who string) (time.Duration, error) {
	n, left, err := lim.Count(ctx, l.d.Store, now, "identity/rl/"+endpoint+"/"+who)
	if err != nil {
		return 0, fmt.Errorf("rate limit: %w", err)
	}
	if n <= lim.N {
		return 0, nil
	}
	if n == lim.N+1 {
		_ = l.d.record(ctx, audit.Event{Type: EventRateLimit, Action: endpoint, Decision: audit.Deny,
			Reason: "too many attempts", Details: map[string]string{"key": who, "limit": fmt.Sprint(lim.N), "window": lim.Window.String()}})
	}
	return max(left, time.Second), nil
}

// Counter is the part of the store that window counts need: an atomic
// increment of a key that expires after ttl. Every replica sharing the
// store shares the counts.
type Counter interface {
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
}

// Count adds one event for key to the fixed window of l that holds now and
// returns how many events that window holds so far and how long until it
// ends. The caller compares n with l.N (n > l.N: over the limit), so it can
// tell the first refusal (n == l.N+1) from the rest. l must be usable
// (N and Window positive; see OrDefault).
func (l Limit) Count(ctx context.Context, c Counter, now time.Time, key string) (n int64, left time.Duration, err error) {
	win := l.Window.Nanoseconds()
	idx := now.UnixNano() / win
	n, err = c.Incr(ctx, key+"/"+strconv.FormatInt(idx, 10), l.Window+time.Second)
	if err != nil {
		return 0, 0, err
	}
	return n, time.Duration((idx+1)*win - now.UnixNano()), nil
}

// OrDefault returns l, or def when l is unusable (N or Window not
// positive).
func (l Limit) OrDefault(def Limit) Limit {
	if l.N <= 0 || l.Window <= 0 {
		return def
	}
	return l
}
