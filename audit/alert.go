package audit

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// AlertType is the Type of the events an Alerter raises.
const AlertType = "alert"

// ReasonLocked is the Reason of a refusal because the person is locked.
// Every door that refuses a locked person records its refusal with Decision
// Deny, the person as Actor and this Reason; the Alerter's "locked" rule
// raises on the first one.
const ReasonLocked = "account locked"

// Alert rules, the "rule" detail of an alert event.
const (
	RuleFailures   = "failures"    // failed approvals or security-key assertions of one person
	RuleDenials    = "denials"     // a burst of denials from one source address or one person
	RuleLocked     = "locked"      // an attempt by a locked person
	RuleRecording  = "recording"   // a recording that fails verification
	RuleKeyCounter = "key_counter" // a security key whose signature counter went back
)

// AlertOptions sets an Alerter's rules. Thresholds are not defaulted here:
// the configuration resolves them (config.ApplyDefaults), and a zero count
// or window turns its rule off.
type AlertOptions struct {
	// Failures failed authentications by one person (events of a type in
	// FailureTypes, with Decision Deny and the person as Actor) within
	// FailureWindow raise a "failures" alert.
	Failures      int
	FailureWindow time.Duration
	// FailureTypes are the event types that count as failed
	// authentication: cmd/gatehouse passes identity's approval and
	// WebAuthn assertion types. Empty: the failures rule sees nothing.
	FailureTypes []string
	// Denials denials (any event with Decision Deny) from one source
	// address (any port) or by one person within DenialWindow raise a
	// "denials" alert.
	Denials      int
	DenialWindow time.Duration
	// ImmediateTypes maps an event type to the rule that its first
	// occurrence with Decision Deny raises at once, e.g.
	// "webauthn.cloned_key" to RuleKeyCounter and "recording.verify" to
	// RuleRecording. A refusal whose Reason is ReasonLocked raises
	// RuleLocked whatever its type.
	ImmediateTypes map[string]string
	// RepeatAfter is how long an immediate rule stays quiet for the same
	// person or resource after it raised; the next alert counts what it
	// saw meanwhile. Zero: every occurrence alerts.
	RepeatAfter time.Duration
	// MaxKeys bounds the keys (rule and person, address or resource)
	// tracked at once; when it is reached, idle ones are forgotten first,
	// then the least recently seen. Zero means 10000.
	MaxKeys int
}

// Alerter watches events as a Log records them and raises alert events on
// suspicious patterns (see the Rule constants). A threshold rule raises at
// most one alert per key per window, so a flood of failures makes one alert,
// not a flood of alerts. Time is the events' own Time. It is safe for
// concurrent use.
type Alerter struct {
	opts      AlertOptions
	failTypes map[string]bool

	mu   sync.Mutex          // guards keys
	keys map[string]*tracked // "rule kind value" -> recent events
}

// tracked holds one key's recent events.
type tracked struct {
	times   []time.Time // events within the window, oldest first (threshold rules)
	seen    int         // events since the last alert (immediate rules)
	alerted time.Time   // when the last alert for this key was raised
	last    time.Time   // the latest event
}

// NewAlerter returns an Alerter with opts' rules.
func NewAlerter(opts AlertOptions) *Alerter {
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 10000
	}
	a := &Alerter{opts: opts, failTypes: map[string]bool{}, keys: make(map[string]*tracked)}
	for _, t := range opts.FailureTypes {
		a.failTypes[t] = true
	}
	return a
}

// trigger is one rule's view of an event: which key it counts under.
type trigger struct {
	rule, kind, value string
	threshold         int           // 0: immediate
	window            time.Duration // threshold rules
}

// Observe takes note of ev and returns the alert events it raises (usually
// none). Alerts themselves are never counted.
func (a *Alerter) Observe(ev Event) []Event {
	if ev.Decision != Deny || ev.Type == AlertType {
		return nil
	}
	var alerts []Event
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, tr := range a.triggers(ev) {
		if alert, ok := a.count(tr, ev); ok {
			alerts = append(alerts, alert)
		}
	}
	return alerts
}

// triggers lists the rules ev counts for.
func (a *Alerter) triggers(ev Event) []trigger {
	var out []trigger
	if ev.Reason == ReasonLocked {
		kind, value := "actor", ev.Actor
		if value == "" {
			kind, value = "source", sourceHost(ev.Source)
		}
		out = append(out, trigger{rule: RuleLocked, kind: kind, value: value})
	}
	if rule := a.opts.ImmediateTypes[ev.Type]; rule != "" {
		kind, value := "resource", ev.Resource
		if value == "" {
			kind, value = "actor", ev.Actor
		}
		out = append(out, trigger{rule: rule, kind: kind, value: value})
	}
	if a.failTypes[ev.Type] && ev.Actor != "" && a.opts.Failures > 0 && a.opts.FailureWindow > 0 {
		out = append(out, trigger{RuleFailures, "actor", ev.Actor, a.opts.Failures, a.opts.FailureWindow})
	}
	if a.opts.Denials > 0 && a.opts.DenialWindow > 0 {
		if ev.Source != "" {
			out = append(out, trigger{RuleDenials, "source", sourceHost(ev.Source), a.opts.Denials, a.opts.DenialWindow})
		}
		if ev.Actor != "" {
			out = append(out, trigger{RuleDenials, "actor", ev.Actor, a.opts.Denials, a.opts.DenialWindow})
		}
	}
	return out
}

// count records ev under tr's key and returns an alert if the rule fires.
// a.mu is held.
func (a *Alerter) count(tr trigger, ev Event) (Event, bool) {
	key := tr.rule + " " + tr.kind + " " + tr.value
	t := a.keys[key]
	if t == nil {
		a.makeRoom(ev.Time)
		t = &tracked{}
		a.keys[key] = t
	}
	if ev.Time.After(t.last) {
		t.last = ev.Time
	}
	var n int
	window := tr.window
	if tr.threshold == 0 {
		window = a.opts.RepeatAfter
		t.seen++
		if !t.alerted.IsZero() && ev.Time.Sub(t.alerted) < window {
			return Event{}, false
		}
		n, t.seen = t.seen, 0
	} else {
		cutoff := ev.Time.Add(-window)
		drop := 0
		for drop < len(t.times) && !t.times[drop].After(cutoff) {
			drop++
		}
		t.times = append(t.times[drop:], ev.Time)
		if len(t.times) > tr.threshold {
			t.times = t.times[len(t.times)-tr.threshold:]
		}
		if len(t.times) < tr.threshold || (!t.alerted.IsZero() && ev.Time.Sub(t.alerted) < window) {
			return Event{}, false
		}
		n = len(t.times)
	}
	t.alerted = ev.Time
	return alertEvent(tr, ev, n, window), true
}

// alertEvent builds the alert for n events of tr's key within window.
func alertEvent(tr trigger, ev Event, n int, window time.Duration) Event {
	alert := Event{
		Time:     ev.Time,
		Type:     AlertType,
		Resource: ev.Resource,
		Action:   tr.rule,
		Reason:   fmt.Sprintf("%s: %d within %v for %s %s (last: %s)", tr.rule, n, window, tr.kind, tr.value, ev.Type),
		Details: map[string]string{
			"rule":      tr.rule,
			"key":       tr.kind,
			"value":     tr.value,
			"count":     strconv.Itoa(n),
			"window":    window.String(),
			"threshold": strconv.Itoa(max(tr.threshold, 1)),
			"trigger":   ev.Type,
			"last_seq":  strconv.FormatUint(ev.Seq, 10),
		},
	}
	switch tr.kind {
	case "source":
		alert.Source = tr.value
	case "actor":
		alert.Actor = tr.value
	default:
		alert.Actor = ev.Actor
	}
	return alert
}

// makeRoom keeps the table under MaxKeys before a new key is added: it
// forgets keys idle for longer than every window, then the least recently
// seen. a.mu is held.
func (a *Alerter) makeRoom(now time.Time) {
	if len(a.keys) < a.opts.MaxKeys {
		return
	}
	cutoff := now.Add(-max(a.opts.FailureWindow, a.opts.DenialWindow, a.opts.RepeatAfter))
	for k, t := range a.keys {
		if !t.last.After(cutoff) {
			delete(a.keys, k)
		}
	}
	for len(a.keys) >= a.opts.MaxKeys {
		var oldest string
		var at time.Time
		for k, t := range a.keys {
			if oldest == "" || t.last.Before(at) {
				oldest, at = k, t.last
			}
		}
		delete(a.keys, oldest)
	}
}

// sourceHost drops the port from a remote address, so that one client's
// many connections count together.
func sourceHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
