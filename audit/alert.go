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

// AlertOptions sets an Alerter's thresholds. The zero value means 10
// denials within one minute, tracking at most 10000 sources and actors.
type AlertOptions struct {
	// Threshold is how many denials from one source address (any port) or
	// one actor within Window raise an alert. Zero means 10.
	Threshold int
	// Window is the sliding window. Zero means one minute.
	Window time.Duration
	// MaxKeys bounds the sources and actors tracked at once; when it is
	// reached, idle ones are forgotten first, then the least recently seen.
	// Zero means 10000.
	MaxKeys int
}

// Alerter watches events as a Log records them and raises an alert event
// when one source or one actor collects Threshold denials (events whose
// Decision is Deny; record failed logins that way) within Window. It raises
// at most one alert per source or actor per Window. Time is the events' own
// Time. It is safe for concurrent use.
type Alerter struct {
	threshold int
	window    time.Duration
	maxKeys   int

	mu   sync.Mutex          // guards keys
	keys map[string]*tracked // "source 1.2.3.4" or "actor a@b" -> recent denials
}

// tracked holds one key's recent denials.
type tracked struct {
	times   []time.Time // denials within the window, oldest first
	alerted time.Time   // when the last alert for this key was raised
	last    time.Time   // the latest denial
}

// NewAlerter returns an Alerter with opts' thresholds.
func NewAlerter(opts AlertOptions) *Alerter {
	if opts.Threshold <= 0 {
		opts.Threshold = 10
	}
	if opts.Window <= 0 {
		opts.Window = time.Minute
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 10000
	}
	return &Alerter{
		threshold: opts.Threshold,
		window:    opts.Window,
		maxKeys:   opts.MaxKeys,
		keys:      make(map[string]*tracked),
	}
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
	if ev.Source != "" {
		if alert, ok := a.count("source", sourceHost(ev.Source), ev); ok {
			alert.Source = sourceHost(ev.Source)
			alerts = append(alerts, alert)
		}
	}
	if ev.Actor != "" {
		if alert, ok := a.count("actor", ev.Actor, ev); ok {
			alert.Actor = ev.Actor
			alerts = append(alerts, alert)
		}
	}
	return alerts
}

// count records a denial for kind/value and returns an alert if it crossed
// the threshold. a.mu is held.
func (a *Alerter) count(kind, value string, ev Event) (Event, bool) {
	key := kind + " " + value
	t := a.keys[key]
	if t == nil {
		a.makeRoom(ev.Time)
		t = &tracked{}
		a.keys[key] = t
	}
	cutoff := ev.Time.Add(-a.window)
	drop := 0
	for drop < len(t.times) && !t.times[drop].After(cutoff) {
		drop++
	}
	t.times = append(t.times[drop:], ev.Time)
	if len(t.times) > a.threshold {
		t.times = t.times[len(t.times)-a.threshold:]
	}
	if ev.Time.After(t.last) {
		t.last = ev.Time
	}
	if len(t.times) < a.threshold || (!t.alerted.IsZero() && ev.Time.Sub(t.alerted) < a.window) {
		return Event{}, false
	}
	t.alerted = ev.Time
	return Event{
		Time:     ev.Time,
		Type:     AlertType,
		Resource: ev.Resource,
		Action:   "repeated denials",
		Reason:   fmt.Sprintf("%d denials from %s %s within %v", len(t.times), kind, value, a.window),
		Details: map[string]string{
			"rule":      "denials",
			"key":       kind,
			"count":     strconv.Itoa(len(t.times)),
			"window":    a.window.String(),
			"threshold": strconv.Itoa(a.threshold),
			"last_seq":  strconv.FormatUint(ev.Seq, 10),
		},
	}, true
}

// makeRoom keeps the table under maxKeys before a new key is added: it
// forgets keys with no denial in the window, then the least recently seen.
// a.mu is held.
func (a *Alerter) makeRoom(now time.Time) {
	if len(a.keys) < a.maxKeys {
		return
	}
	cutoff := now.Add(-a.window)
	for k, t := range a.keys {
		if !t.last.After(cutoff) {
			delete(a.keys, k)
		}
	}
	for len(a.keys) >= a.maxKeys {
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
