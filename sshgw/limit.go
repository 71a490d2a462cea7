package sshgw

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// counter is the subset of store.Store the rate limiter uses.
type counter = identity.Counter

// Limit allows at most N events per fixed Window. It is identity's, so both
// doors count windows and bucket sources (IPv6 per /64) the same way.
type Limit = identity.Limit

// Default limits. AuthPerSource counts the failed attempts from one source
// (an unbound key, a refusal): a key with a valid binding is not counted
// there, so one noisy key behind a NAT does not lock out every other key
// from that address. AuthPerKey counts every key proof per (source, key).
// Approvals count only the approvals started, which each need a person at a
// browser.
var (
	DefaultAuthPerSource     = Limit{N: 300, Window: time.Minute}
	DefaultAuthPerKey        = Limit{N: 120, Window: time.Minute}
	DefaultApprovalPerSource = Limit{N: 10, Window: 5 * time.Minute}
	DefaultApprovalPerKey    = Limit{N: 5, Window: 5 * time.Minute}
)

// Limits are the rate limits on authentication. A zero Limit takes its
// default.
type Limits struct {
	AuthPerSource, AuthPerKey         Limit
	ApprovalPerSource, ApprovalPerKey Limit
}

func (l Limits) withDefaults() Limits {
	l.AuthPerSource = l.AuthPerSource.OrDefault(DefaultAuthPerSource)
	l.AuthPerKey = l.AuthPerKey.OrDefault(DefaultAuthPerKey)
	l.ApprovalPerSource = l.ApprovalPerSource.OrDefault(DefaultApprovalPerSource)
	l.ApprovalPerKey = l.ApprovalPerKey.OrDefault(DefaultApprovalPerKey)
	return l
}

// errRateLimited is returned when a limit is exceeded.
var errRateLimited = errors.New("rate limited")

// limiter counts events in fixed windows in the store, so that every
// replica shares the counts. A store error is returned too: callers fail
// closed.
type limiter struct {
	c      counter
	limits Limits
	now    func() time.Time
}

// keyProof counts one proven key from source, per (source, key): one key
// that hammers the gateway is limited without touching other keys.
func (l *limiter) keyProof(ctx context.Context, source, fingerprint string) error {
	return l.count(ctx, "auth/key/"+identity.SourceKey(source)+"/"+fingerprint, l.limits.AuthPerKey)
}

// failure counts one failed or unbound attempt from source, and refuses
// when the source has too many.
func (l *limiter) failure(ctx context.Context, source string) error {
	return l.count(ctx, "auth/src/"+identity.SourceKey(source), l.limits.AuthPerSource)
}

// approval counts one approval started from source for a key.
func (l *limiter) approval(ctx context.Context, source, fingerprint string) error {
	if err := l.count(ctx, "approval/src/"+identity.SourceKey(source), l.limits.ApprovalPerSource); err != nil {
		return err
	}
	return l.count(ctx, "approval/key/"+fingerprint, l.limits.ApprovalPerKey)
}

func (l *limiter) count(ctx context.Context, what string, lim Limit) error {
	n, _, err := lim.Count(ctx, l.c, l.now(), "sshgw/rate/"+what)
	if err != nil {
		return err
	}
	if n > lim.N {
		return errRateLimited
	}
	return nil
}
