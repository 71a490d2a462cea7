package config

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// minimalYAML has public_url, listen, data_dir, sso, one route and one
// target, and no mfa block: every default must be filled in.
const minimalYAML = `public_url: https://gate.example.com
listen: {https: ":443", ssh: ":2222"}
tls: {mode: acme}
data_dir: /var/lib/gatehouse
sso: {issuer: https://idp.example.com, client_id: gatehouse, client_secret_file: /etc/gatehouse/oidc-secret}
routes:
  - name: grafana
    host: grafana.example.com
    upstream: http://10.0.0.5:3000
    allow: {groups: [eng]}
    paths: [{prefix: /admin, allow: {groups: [ops]}}]
targets:
  - name: prod-db
    address: 10.0.0.7:22
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    logins: [ubuntu]
    allow: {groups: [sre]}
    record: off
`

func TestLoadResolvesDefaults(t *testing.T) {
	c, err := Load([]byte(minimalYAML))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	got := map[string]any{
		"shutdown_timeout":               c.ShutdownTimeout.D(),
		"listen.admin":                   c.Listen.Admin,
		"listen.http":                    c.Listen.HTTP,
		"tls.min_version":                c.TLS.MinVersion,
		"tls.acme.directory":             c.TLS.ACME.Directory,
		"sso.groups_claim":               c.SSO.GroupsClaim,
		"sso.scopes":                     c.SSO.Scopes,
		"mfa.max_age":                    c.MFA.MaxAge.D(),
		"webauthn.enrollment":            c.WebAuthn.Enrollment,
		"routes[0].mfa_max_age":          c.Routes[0].MFAMaxAge.D(),
		"routes[0].timeout":              c.Routes[0].Timeout.D(),
		"routes[0].paths[0].mfa_max_age": c.Routes[0].Paths[0].MFAMaxAge.D(),
		"targets[0].mfa":                 c.Targets[0].MFA,
		"targets[0].mfa_max_age":         c.Targets[0].MFAMaxAge.D(),
		"targets[0].idle_timeout":        c.Targets[0].IdleTimeout.D(),
		"targets[0].max_session":         c.Targets[0].MaxSession.D(),
		"targets[0].retention":           c.Targets[0].Retention.D(),
		"log.format":                     c.Log.Format,
		"log.level":                      c.Log.Level,
		"recording.dir":                  c.Recording.Dir,
		"audit.alerts.failures":          c.Audit.Alerts.Failures,
		"audit.alerts.failure_window":    c.Audit.Alerts.FailureWindow.D(),
		"audit.alerts.denials":           c.Audit.Alerts.Denials,
		"audit.alerts.denial_window":     c.Audit.Alerts.DenialWindow.D(),
		"audit.alerts.repeat_after":      c.Audit.Alerts.RepeatAfter.D(),
		"audit.syslog":                   c.Audit.Syslog,
	}
	want := map[string]any{
		"shutdown_timeout":               15 * time.Second,
		"listen.admin":                   "127.0.0.1:9090",
		"listen.http":                    "", // off
		"tls.min_version":                "1.2",
		"tls.acme.directory":             "https://acme-v02.api.letsencrypt.org/directory",
		"sso.groups_claim":               "groups",
		"sso.scopes":                     []string{"openid", "email", "profile", "groups"},
		"mfa.max_age":                    12 * time.Hour,
		"webauthn.enrollment":            "open",
		"routes[0].mfa_max_age":          12 * time.Hour,
		"routes[0].timeout":              30 * time.Second,
		"routes[0].paths[0].mfa_max_age": 12 * time.Hour,
		"targets[0].mfa":                 "max_age",
		"targets[0].mfa_max_age":         12 * time.Hour,
		"targets[0].idle_timeout":        30 * time.Minute,
		"targets[0].max_session":         12 * time.Hour,
		"targets[0].retention":           time.Duration(0), // keep
		"log.format":                     "json",
		"log.level":                      "info",
		"recording.dir":                  filepath.Join(c.DataDir, "recordings"),
		"audit.alerts.failures":          5,
		"audit.alerts.failure_window":    10 * time.Minute,
		"audit.alerts.denials":           10,
		"audit.alerts.denial_window":     time.Minute,
		"audit.alerts.repeat_after":      10 * time.Minute,
		"audit.syslog":                   (*Syslog)(nil), // off
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resolved defaults (-want +got):\n%s", diff)
	}
}

// TestLoadInheritsMFAMaxAge checks the inheritance chain: mfa.max_age to
// routes and targets, a route's to its path rules; explicit values stay.
func TestLoadInheritsMFAMaxAge(t *testing.T) {
	doc := minimalYAML + "mfa: {max_age: 2h}\n"
	doc = replaceOnce(t, doc, "    allow: {groups: [eng]}\n", "    allow: {groups: [eng]}\n    mfa_max_age: 30m\n")
	doc = replaceOnce(t, doc, "{prefix: /admin, allow: {groups: [ops]}}", "{prefix: /admin, allow: {groups: [ops]}}, {prefix: /x, allow: {groups: [ops]}, mfa_max_age: 5m}")
	c, err := Load([]byte(doc))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	for _, tt := range []struct {
		path      string
		got, want time.Duration
	}{
		{"mfa.max_age", c.MFA.MaxAge.D(), 2 * time.Hour},
		{"routes[0].mfa_max_age", c.Routes[0].MFAMaxAge.D(), 30 * time.Minute},
		{"routes[0].paths[0].mfa_max_age", c.Routes[0].Paths[0].MFAMaxAge.D(), 30 * time.Minute},
		{"routes[0].paths[1].mfa_max_age", c.Routes[0].Paths[1].MFAMaxAge.D(), 5 * time.Minute},
		{"targets[0].mfa_max_age", c.Targets[0].MFAMaxAge.D(), 2 * time.Hour},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.path, tt.got, tt.want)
		}
	}
}

func TestApplyDefaultsIdempotent(t *testing.T) {
	c, err := Load([]byte(minimalYAML))
	if err != nil {
		t.Fatal(err)
	}
	before := *c
	before.SSO.Scopes = append([]string(nil), c.SSO.Scopes...)
	c.ApplyDefaults()
	if diff := cmp.Diff(before, *c); diff != "" {
		t.Errorf("second ApplyDefaults changed the config (-first +second):\n%s", diff)
	}
	// Files mode gets no ACME directory: only acme mode uses one.
	var files Config
	files.TLS.Mode = TLSModeFiles
	files.ApplyDefaults()
	if files.TLS.ACME.Directory != "" {
		t.Errorf("tls.acme.directory = %q in files mode, want empty", files.TLS.ACME.Directory)
	}
}

// TestLoadAuditAlertsAndSyslog: set values stay, unset ones get their
// default, and a syslog block gets its tag.
func TestLoadAuditAlertsAndSyslog(t *testing.T) {
	doc := minimalYAML + "audit:\n  alerts: {failures: 3, denial_window: 30s}\n  syslog: {network: udp, address: \"127.0.0.1:514\"}\n"
	c, err := Load([]byte(doc))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	want := Audit{
		Alerts: Alerts{Failures: 3, FailureWindow: Duration(10 * time.Minute), Denials: 10,
			DenialWindow: Duration(30 * time.Second), RepeatAfter: Duration(10 * time.Minute)},
		Syslog: &Syslog{Network: "udp", Address: "127.0.0.1:514", Tag: "gatehouse"},
	}
	if diff := cmp.Diff(want, c.Audit); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
	// The local syslog: an empty block is valid.
	if _, err := Load([]byte(minimalYAML + "audit: {syslog: {}}\n")); err != nil {
		t.Errorf("Load with audit.syslog {} = %v", err)
	}
}
