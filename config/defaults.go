package config

import (
	"path/filepath"
	"time"
)

// The documented defaults (README.md, "Configuration" reference). They are
// resolved once, by ApplyDefaults at load, so that a field documented
// "default 12h" is 12h for every consumer: no consumer re-defaults, and two
// doors cannot disagree about what an absent key means.
const (
	DefaultShutdownTimeout = 15 * time.Second
	DefaultAdminAddr       = "127.0.0.1:9090"
	DefaultTLSMinVersion   = "1.2"
	// DefaultACMEDirectory is Let's Encrypt's production directory (the
	// value of certmagic.LetsEncryptProductionCA, which config may not
	// import).
	DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"
	DefaultGroupsClaim   = "groups"
	DefaultMFAMaxAge     = 12 * time.Hour
	DefaultRouteTimeout  = 30 * time.Second
	DefaultIdleTimeout   = 30 * time.Minute
	DefaultMaxSession    = 12 * time.Hour
	DefaultLogFormat     = "json"
	DefaultLogLevel      = "info"
	// DefaultRecordingDirName is recording.dir's default in data_dir.
	DefaultRecordingDirName = "recordings"

	// Alert thresholds (audit.alerts) and the syslog tag.
	DefaultAlertFailures      = 5
	DefaultAlertFailureWindow = 10 * time.Minute
	DefaultAlertDenials       = 10
	DefaultAlertDenialWindow  = time.Minute
	DefaultAlertRepeatAfter   = 10 * time.Minute
	DefaultSyslogTag          = "gatehouse"
)

// DefaultScopes are the OIDC scopes requested when sso.scopes is empty.
func DefaultScopes() []string { return []string{"openid", "email", "profile", "groups"} }

// ApplyDefaults replaces every zero field that has a documented default by
// that default. Load and LoadFile call it before validating; callers that
// build a Config in code call it themselves. It is idempotent.
//
// Inheritance follows the reference: a route's or target's zero
// mfa_max_age is mfa.max_age, a path rule's is its route's. Fields whose
// zero is meaningful stay zero: an empty listen address is "off", zero
// retention is "keep", redis.db 0 is database 0.
func (c *Config) ApplyDefaults() {
	setDuration(&c.ShutdownTimeout, DefaultShutdownTimeout)
	setString(&c.Listen.Admin, DefaultAdminAddr)
	setString(&c.TLS.MinVersion, DefaultTLSMinVersion)
	if c.TLS.Mode == TLSModeACME {
		setString(&c.TLS.ACME.Directory, DefaultACMEDirectory)
	}
	if c.Redis != nil {
		setString(&c.Redis.Prefix, DefaultRedisPrefix)
	}
	setString(&c.SSO.GroupsClaim, DefaultGroupsClaim)
	if len(c.SSO.Scopes) == 0 {
		c.SSO.Scopes = DefaultScopes()
	}
	setDuration(&c.MFA.MaxAge, DefaultMFAMaxAge)
	setString(&c.WebAuthn.Enrollment, EnrollmentOpen)
	for i := range c.Routes {
		r := &c.Routes[i]
		setDuration(&r.MFAMaxAge, c.MFA.MaxAge.D())
		setDuration(&r.Timeout, DefaultRouteTimeout)
		for j := range r.Paths {
			setDuration(&r.Paths[j].MFAMaxAge, r.MFAMaxAge.D())
		}
	}
	for i := range c.Targets {
		t := &c.Targets[i]
		setString(&t.MFA, MFAMaxAge)
		setDuration(&t.MFAMaxAge, c.MFA.MaxAge.D())
		setString(&t.Record, RecordRequired)
		setDuration(&t.IdleTimeout, DefaultIdleTimeout)
		setDuration(&t.MaxSession, DefaultMaxSession)
	}
	if c.Recording.Dir == "" && c.DataDir != "" {
		c.Recording.Dir = filepath.Join(c.DataDir, DefaultRecordingDirName)
	}
	if c.Secrets.MasterKeyFile == "" && c.DataDir != "" {
		c.Secrets.MasterKeyFile = filepath.Join(c.DataDir, DefaultMasterKeyName)
		c.Secrets.MasterKeyDefault = true
	}
	c.Audit.applyDefaults()
	setString(&c.Log.Format, DefaultLogFormat)
	setString(&c.Log.Level, DefaultLogLevel)
}

// applyDefaults fills audit.alerts and audit.syslog.tag. A negative count
// is left for Validate to refuse.
func (a *Audit) applyDefaults() {
	al := &a.Alerts
	if al.Failures == 0 {
		al.Failures = DefaultAlertFailures
	}
	if al.Denials == 0 {
		al.Denials = DefaultAlertDenials
	}
	setDuration(&al.FailureWindow, DefaultAlertFailureWindow)
	setDuration(&al.DenialWindow, DefaultAlertDenialWindow)
	setDuration(&al.RepeatAfter, DefaultAlertRepeatAfter)
	if a.Syslog != nil {
		setString(&a.Syslog.Tag, DefaultSyslogTag)
	}
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}
