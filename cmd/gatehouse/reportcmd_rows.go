package main

import (
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/recording"
)

// reportQuery is whose accesses a report lists, from when.
type reportQuery struct {
	user  string            // email, lower case
	since time.Time         // events at or after
	hosts map[string]string // route host -> route name
}

// reportRow is one line of a report (one JSON object with --json).
type reportRow struct {
	Time time.Time `json:"time"`
	// Kind is route (an app host), ssh (a target or the gateway), sign-in
	// (SSO or security key), approval, lock, session (a sign-out), review
	// (recordings the person played as a reviewer), or recording (a
	// recorded session that no audit log given names).
	Kind       string   `json:"kind"`
	Resource   string   `json:"resource,omitempty"` // route:NAME, target:NAME, host:HOST, user:EMAIL, ...
	Action     string   `json:"action,omitempty"`
	Decision   string   `json:"decision,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Session    string   `json:"session,omitempty"` // SSH connection ID or web session handle prefix
	Recordings []string `json:"recordings,omitempty"`
	Source     string   `json:"source,omitempty"`
	Replica    string   `json:"replica,omitempty"`
	Type       string   `json:"type,omitempty"` // the audit event type
}

// reportKinds names the events that say what a person accessed.
var reportKinds = map[string]string{
	"session.handoff":  "route",
	"http.access":      "route",
	"ssh.auth":         "ssh",
	"ssh.channel":      "ssh",
	"ssh.end":          "ssh",
	"ssh.recording":    "ssh",
	"sso.login":        "sign-in",
	"webauthn.assert":  "sign-in",
	"webauthn.enroll":  "sign-in",
	"approval":         "approval",
	"ssh.approval":     "approval",
	"lock":             "lock",
	"unlock":           "lock",
	"session.revoke":   "session",
	"ssh.keybind":      "ssh",
	"recording.play":   "review",
	"recording.export": "review",
}

// concerns reports whether ev is about q's person: they did it, or it was
// done to their account (a lock).
func (q reportQuery) concerns(ev audit.Event) bool {
	if strings.EqualFold(strings.TrimSpace(ev.Actor), q.user) {
		return true
	}
	return (ev.Type == "lock" || ev.Type == "unlock") && strings.EqualFold(ev.Resource, "user:"+q.user)
}

// buildReport turns the person's events since q.since and their
// recordings into rows in time order. A recording joins the SSH rows of
// its connection (Meta.SessionID is the connection ID the audit events
// carry); one that no row names gets a row of its own.
func buildReport(q reportQuery, events []audit.Event, metas []recording.Meta) []reportRow {
	bySession := map[string][]string{}
	for _, m := range metas {
		if strings.EqualFold(m.User, q.user) && m.SessionID != "" {
			bySession[m.SessionID] = append(bySession[m.SessionID], m.ID)
		}
	}
	joined := map[string]bool{}
	var rows []reportRow
	for _, ev := range events {
		if ev.Time.Before(q.since) || !q.concerns(ev) {
			continue
		}
		kind, ok := reportKinds[ev.Type]
		if !ok {
			continue // not an access (a seal, an alert, a reload)
		}
		r := reportRow{Time: ev.Time, Kind: kind, Resource: ev.Resource, Action: ev.Action, Decision: ev.Decision,
			Reason: ev.Reason, Session: ev.Session, Source: ev.Source, Replica: ev.Replica, Type: ev.Type}
		if host, ok := strings.CutPrefix(ev.Resource, "host:"); ok && kind == "route" {
			if name := q.hosts[strings.ToLower(host)]; name != "" {
				r.Resource = "route:" + name
			}
			if r.Action == "" {
				r.Action = "session opened on " + host
			}
		}
		if r.Action == "" {
			r.Action = ev.Type // sso.login, webauthn.assert: what kind of sign-in
		}
		if kind == "ssh" && ev.Session != "" {
			r.Recordings = bySession[ev.Session]
			joined[ev.Session] = true
		}
		rows = append(rows, r)
	}
	for _, m := range metas {
		if !strings.EqualFold(m.User, q.user) || joined[m.SessionID] || m.Start.Before(q.since) {
			continue
		}
		rows = append(rows, reportRow{Time: m.Start, Kind: "recording", Resource: "target:" + m.Target, Action: "login " + m.Login,
			Decision: audit.Allow, Session: m.SessionID, Recordings: []string{m.ID}, Source: m.Source, Replica: m.Replica})
	}
	slices.SortStableFunc(rows, func(a, b reportRow) int { return a.Time.Compare(b.Time) })
	return rows
}
