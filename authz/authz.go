// Package authz makes Gatehouse's access decisions. Every function is pure:
// it reads the identity, the configured resource and the request, and
// returns a Decision with a human-readable reason for the audit log. There
// is no I/O and no clock; the caller passes the current time.
//
// Every default fails closed: a nil resource, an empty allow list, a zero
// or future-dated MFA time, or an unknown login is a deny.
package authz

import (
	"time"
)

// Subject is the person asking: their identity as the IdP reported it and
// the time of their last WebAuthn assertion.
type Subject struct {
	Email  string
	Groups []string
	// MFAAt is the time of the last WebAuthn assertion; zero means never.
	MFAAt time.Time
}

// Decision is the outcome of one access check.
type Decision struct {
	Allow bool
	// Reason explains the decision in words a person can act on. It names
	// the rule and the groups or domains it requires, never other users'
	// addresses, upstream URLs or anything else from the config.
	Reason string
	// Rule identifies the rule that decided, e.g. "route:grafana",
	// "route:grafana:path:/admin" or "target:prod-db".
	Rule string
	// NeedMFA is true when the subject is allowed in every respect except
	// that their WebAuthn assertion is missing or too old: a fresh assertion
	// (step-up) would turn this deny into an allow.
	NeedMFA bool
	// EveryConnection is set by DecideTarget for targets configured with
	// mfa: every_connection. The SSH gateway must then obtain a fresh,
	// connection-bound approval even when Allow is true.
	EveryConnection bool
}

// maxFutureSkew is how far in the future an MFA time may lie (clock skew
// between replicas) before it is treated as invalid.
const maxFutureSkew = time.Minute

// mfaFresh reports whether at is a usable assertion time at now for the
// given maximum age. A zero time, a non-positive maximum age and a time
// too far in the future are all stale.
func mfaFresh(at time.Time, maxAge time.Duration, now time.Time) bool {
	if at.IsZero() || maxAge <= 0 {
		return false
	}
	age := now.Sub(at)
	if age < -maxFutureSkew {
		return false
	}
	return age <= maxAge
}

// pickMFA returns the first positive duration of ds, or zero.
func pickMFA(ds ...time.Duration) time.Duration {
	for _, d := range ds {
		if d > 0 {
			return d
		}
	}
	return 0
}
