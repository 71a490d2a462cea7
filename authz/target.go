package authz

import (
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// DecideTarget decides whether s may log in as login on SSH target t at
// time now. The subject must be listed by the target's allow list, login
// must be one of its logins (exact match), and the WebAuthn assertion must
// be fresher than the target's mfa_max_age (zero: defaultMFA).
//
// For targets with mfa: every_connection the Decision has EveryConnection
// set, allow or deny: the SSH gateway must then demand a fresh approval
// bound to this connection regardless of the assertion age.
func DecideTarget(s Subject, t *config.Target, login string, defaultMFA time.Duration, now time.Time) Decision {
	if t == nil {
		return Decision{Reason: "no such target", Rule: "target:"}
	}
	ruleID := "target:" + t.Name
	where := "target " + t.Name
	every := t.MFA == config.MFAEveryConnection
	k, entry := match(s, t.Allow)
	if k == matchNone {
		return Decision{Rule: ruleID, EveryConnection: every, Reason: where + ": " + requirement(t.Allow)}
	}
	if !contains(t.Logins, login) {
		return Decision{Rule: ruleID, EveryConnection: every, Reason: where + ": login " + quoteLogin(login) + " is not allowed"}
	}
	d := decide(s, []config.Allow{t.Allow}, pickMFA(t.MFAMaxAge.D(), defaultMFA), now, ruleID, where)
	d.EveryConnection = every
	if d.Allow {
		d.Reason = where + ": login " + login + " allowed by " + admitted(k, entry)
	}
	return d
}

func contains(list []string, s string) bool {
	if s == "" {
		return false
	}
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// quoteLogin renders a client-supplied login safely for a reason string.
func quoteLogin(login string) string {
	const max = 64
	if len(login) > max {
		login = login[:max] + "..."
	}
	b := make([]byte, 0, len(login)+2)
	b = append(b, '"')
	for i := 0; i < len(login); i++ {
		c := login[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			c = '?'
		}
		b = append(b, c)
	}
	return string(append(b, '"'))
}
