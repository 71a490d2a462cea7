// Package audit writes typed, hash-chained audit events: every access
// decision, login, approval, lock and playback. Each JSON line carries the
// SHA-256 of the line before it, so Verify finds any line that was edited,
// removed or reordered.
package audit

import "time"

// Decisions.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Event is one audit record. Callers fill the descriptive fields; the Log
// sets Time (if zero; always stored in UTC), Replica, Seq and Prev. A
// refusal or a failure (a failed login, an unknown key) is recorded with
// Decision Deny, which is what the Alerter counts. The Log itself records
// events of Type AlertType and RepairType.
type Event struct {
	Time     time.Time         `json:"time"`
	Type     string            `json:"type"`               // e.g. "http.access", "ssh.auth", "sso.login", "webauthn.assert", "approval", "lock"
	Actor    string            `json:"actor,omitempty"`    // the person's email, when known
	Resource string            `json:"resource,omitempty"` // e.g. "route:grafana", "target:prod-db"
	Action   string            `json:"action,omitempty"`   // e.g. "GET /dashboards", "login ubuntu", "exec"
	Decision string            `json:"decision,omitempty"` // Allow or Deny
	Reason   string            `json:"reason,omitempty"`   // why; never a secret
	Source   string            `json:"source,omitempty"`   // remote address
	Session  string            `json:"session,omitempty"`  // session or connection ID
	Replica  string            `json:"replica,omitempty"`
	Details  map[string]string `json:"details,omitempty"`
	Seq      uint64            `json:"seq"`
	Prev     string            `json:"prev"` // hex SHA-256 of the previous line ("" for the first)
}
