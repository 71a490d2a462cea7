package sshgw

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"
)

// counter is the subset of store.Store the rate limiter uses.
type counter interface {
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
}

// Limit allows at most N events per fixed Window.
type Limit struct {
	N      int64
	Window time.Duration
}

// Default limits. Authentication attempts count every public key the
// client proves and every approval it starts; approvals count only the
// approvals started, which each need a person at a browser.
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
	def := func(v *Limit, d Limit) {
		if v.N <= 0 || v.Window <= 0 {
			*v = d
		}
	}
	def(&l.AuthPerSource, DefaultAuthPerSource)
	def(&l.AuthPerKey, DefaultAuthPerKey)
	def(&l.ApprovalPerSource, DefaultApprovalPerSource)
	def(&l.ApprovalPerKey, DefaultApprovalPerKey)
	return l
}

// errRateLimited is returned when a limit is exceeded.
var errRateLimited = errors.New("rate limited")

// limiter counts events per source and per key in fixed windows in the
// store, so that every replica shares the counts.
type limiter struct {
	c      counter
	limits Limits
	now    func() time.Time
}

// allow counts one event of kind ("auth" or "approval") for source and key
// fingerprint and returns errRateLimited (naming which limit) when either
// count is over its limit. A store error is returned too: callers fail
// closed.
func (l *limiter) allow(ctx context.Context, kind, source, fingerprint string) error {
	perSource, perKey := l.limits.AuthPerSource, l.limits.AuthPerKey
	if kind == "approval" {
		perSource, perKey = l.limits.ApprovalPerSource, l.limits.ApprovalPerKey
	}
	if err := l.count(ctx, kind+"/src/"+sourceBucket(source), perSource); err != nil {
		return err
	}
	if fingerprint == "" {
		return nil
	}
	return l.count(ctx, kind+"/key/"+fingerprint, perKey)
}

func (l *limiter) count(ctx context.Context, what string, lim Limit) error {
	now := l.now()
	window := now.Truncate(lim.Window).Unix()
	key := "sshgw/rate/" + what + "/" + strconv.FormatInt(window, 10)
	n, err := l.c.Incr(ctx, key, lim.Window+time.Second)
	if err != nil {
		return err
	}
	if n > lim.N {
		return errRateLimited
	}
	return nil
}

// sourceBucket reduces a remote address to what a limit counts: the IPv4
// address, or the /64 of an IPv6 address (one host usually owns a /64).
func sourceBucket(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return "unknown"
	case ip.To4() != nil:
		return ip.To4().String()
	default:
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
}
