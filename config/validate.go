package config

import (
	"bytes"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
)

// Validate checks c and returns every problem at once as Problems (with
// paths, without line numbers), or nil. It is pure: it reads no files and
// changes nothing, so it can run on a reload candidate safely. LoadFile,
// which check-config, serve and reload run, adds the checks that read the
// files the config names (see CheckFiles).
func (c *Config) Validate() error {
	if ps := c.validate(); len(ps) > 0 {
		return Problems(ps)
	}
	return nil
}

// validator collects problems under their YAML paths.
type validator struct{ ps []Problem }

func (v *validator) addf(path, format string, args ...any) {
	v.ps = append(v.ps, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

var (
	hostRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (c *Config) validate() []Problem {
	v := &validator{}
	pub := v.publicURL(c.PublicURL)
	v.listen(c.Listen)
	v.tls(c.TLS, c.Listen)
	if c.DataDir == "" {
		v.addf("data_dir", "required")
	} else if !filepath.IsAbs(c.DataDir) {
		v.addf("data_dir", "must be an absolute path")
	}
	v.secrets(c.Secrets)
	if c.Redis != nil {
		v.redis(*c.Redis)
	}
	// A set issuer is used (the portal signs people in with it) even
	// without routes or targets, so it must be complete then too.
	if len(c.Routes) > 0 || len(c.Targets) > 0 || c.SSO.Issuer != "" {
		v.sso(c.SSO)
	}
	switch c.WebAuthn.Enrollment {
	case "", EnrollmentOpen, EnrollmentInvite:
	default:
		v.addf("webauthn.enrollment", "must be %q or %q", EnrollmentOpen, EnrollmentInvite)
	}
	hosts := map[string]string{}
	if pub != nil {
		hosts[strings.ToLower(pub.Hostname())] = "public_url"
	}
	names := map[string]string{}
	for i, r := range c.Routes {
		v.route(fmt.Sprintf("routes[%d]", i), r, hosts, names)
	}
	if len(c.Routes) > 0 && c.Listen.HTTPS == "" {
		v.addf("listen.https", "required when routes are configured")
	}
	tnames := map[string]string{}
	for i, t := range c.Targets {
		v.target(fmt.Sprintf("targets[%d]", i), t, tnames)
	}
	if len(c.Targets) > 0 && c.Listen.SSH == "" {
		v.addf("listen.ssh", "required when targets are configured")
	}
	v.allow("reviewers", c.Reviewers)
	v.allow("admins", c.Admins)
	v.recording(c.Recording)
	if w := c.Audit.Webhook; w != nil {
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.addf("audit.webhook.url", "must be an http or https URL")
		}
		v.absFile("audit.webhook.secret_file", w.SecretFile, true)
	}
	v.alerts(c.Audit.Alerts)
	if sl := c.Audit.Syslog; sl != nil {
		v.syslog(*sl)
	}
	switch c.Log.Format {
	case "", "json", "text":
	default:
		v.addf("log.format", "must be json or text")
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		v.addf("log.level", "must be debug, info, warn or error")
	}
	return v.ps
}

func (v *validator) publicURL(s string) *url.URL {
	if s == "" {
		v.addf("public_url", "required")
		return nil
	}
	u, err := url.Parse(s)
	// The literal prefix, not only the parsed scheme: url.Parse lowercases
	// "HTTPS://", which the approvals door refuses.
	if err != nil || !strings.HasPrefix(s, "https://") || u.Hostname() == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		v.addf("public_url", "must be an https URL with a host and no path, e.g. https://gate.example.com")
		return nil
	}
	if net.ParseIP(u.Hostname()) != nil {
		v.addf("public_url", "must use a host name, not an IP address (WebAuthn needs a domain)")
	}
	return u
}

func (v *validator) listen(l Listen) {
	for _, f := range []struct{ path, addr string }{
		{"listen.https", l.HTTPS}, {"listen.ssh", l.SSH}, {"listen.http", l.HTTP}, {"listen.admin", l.Admin},
	} {
		if f.addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(f.addr); err != nil {
			v.addf(f.path, "must be host:port or :port")
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			v.addf(f.path, "port must be a number from 0 to 65535")
		}
	}
	if l.HTTPS == "" && l.SSH == "" {
		v.addf("listen", "at least one of https or ssh is required")
	}
}

func (v *validator) tls(t TLS, l Listen) {
	switch t.MinVersion {
	case "", "1.2", "1.3":
	default:
		v.addf("tls.min_version", `must be "1.2" or "1.3"`)
	}
	switch t.Mode {
	case TLSModeACME:
		if t.ACME.Email != "" {
			if _, err := mail.ParseAddress(t.ACME.Email); err != nil {
				v.addf("tls.acme.email", "must be an email address")
			}
		}
		if t.ACME.Directory != "" {
			if u, err := url.Parse(t.ACME.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
				v.addf("tls.acme.directory", "must be an https URL")
			}
		}
		for i, f := range t.ACME.CARoots {
			v.absFile(fmt.Sprintf("tls.acme.ca_roots[%d]", i), f, true)
		}
		if t.CertFile != "" || t.KeyFile != "" {
			v.addf("tls", "cert_file and key_file are only for mode: files")
		}
	case TLSModeFiles:
		v.absFile("tls.cert_file", t.CertFile, true)
		v.absFile("tls.key_file", t.KeyFile, true)
	case TLSModeSelfSigned:
	case "":
		if l.HTTPS != "" {
			v.addf("tls.mode", "required: acme, files or self_signed")
		}
	default:
		v.addf("tls.mode", "must be acme, files or self_signed")
	}
}

func (v *validator) sso(s SSO) {
	if s.Issuer == "" {
		v.addf("sso.issuer", "required when routes or targets are configured")
	} else if u, err := url.Parse(s.Issuer); err != nil || u.Scheme != "https" || u.Host == "" {
		v.addf("sso.issuer", "must be an https URL")
	}
	if s.ClientID == "" {
		v.addf("sso.client_id", "required")
	}
	v.absFile("sso.client_secret_file", s.ClientSecretFile, true)
	for i, f := range s.CARoots {
		v.absFile(fmt.Sprintf("sso.ca_roots[%d]", i), f, true)
	}
}

// absFile checks that a file path is absolute; secrets and roots are read
// from files, never inline.
func (v *validator) absFile(path, file string, required bool) {
	switch {
	case file == "" && required:
		v.addf(path, "required")
	case file != "" && !filepath.IsAbs(file):
		v.addf(path, "must be an absolute path")
	}
}

func (v *validator) allow(path string, a Allow) {
	for i, e := range a.Emails {
		v.email(fmt.Sprintf("%s.emails[%d]", path, i), e)
	}
	for i, d := range a.EmailDomains {
		if !hostRE.MatchString(d) {
			v.addf(fmt.Sprintf("%s.email_domains[%d]", path, i), "invalid domain %q (lowercase, no @)", d)
		}
	}
	for i, g := range a.Groups {
		if strings.TrimSpace(g) == "" {
			v.addf(fmt.Sprintf("%s.groups[%d]", path, i), "must not be empty")
		}
	}
}

func (v *validator) route(p string, r Route, hosts, names map[string]string) {
	v.name(p, r.Name, names)
	switch {
	case r.Host == "":
		v.addf(p+".host", "required")
	case !hostRE.MatchString(r.Host):
		v.addf(p+".host", "must be a lowercase DNS name without port")
	case hosts[r.Host] != "":
		v.addf(p+".host", "%q is already used by %s", r.Host, hosts[r.Host])
	default:
		hosts[r.Host] = p
	}
	if r.Upstream == "" {
		v.addf(p+".upstream", "required")
	} else if u, err := url.Parse(r.Upstream); err != nil {
		v.addf(p+".upstream", "invalid URL")
	} else if u.Scheme != "http" && u.Scheme != "https" {
		v.addf(p+".upstream", "scheme must be http or https")
	} else if u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		v.addf(p+".upstream", "must be scheme://host[:port][/path] with no credentials or query")
	}
	v.allow(p+".allow", r.Allow)
	for i, pr := range r.Paths {
		pp := fmt.Sprintf("%s.paths[%d]", p, i)
		if !strings.HasPrefix(pr.Prefix, "/") {
			v.addf(pp+".prefix", "must start with /")
		}
		v.allow(pp+".allow", pr.Allow)
	}
	v.hop(p, r)
}

func (v *validator) name(p, name string, names map[string]string) {
	switch {
	case name == "":
		v.addf(p+".name", "required")
	case !ValidTargetName(name):
		v.addf(p+".name", "must be lowercase letters, digits and dashes")
	case names[name] != "":
		v.addf(p+".name", "%q is already used by %s", name, names[name])
	default:
		names[name] = p
	}
}

func (v *validator) target(p string, t Target, names map[string]string) {
	v.name(p, t.Name, names)
	if t.Address == "" {
		v.addf(p+".address", "required")
	} else if _, _, err := net.SplitHostPort(t.Address); err != nil {
		v.addf(p+".address", "must be host:port")
	}
	switch {
	case t.HostKey == "" && t.HostCA == "":
		v.addf(p, "one of host_key or host_ca is required (host keys are never trusted on first use)")
	case t.HostKey != "" && t.HostCA != "":
		v.addf(p, "set host_key or host_ca, not both")
	case t.HostKey != "":
		v.sshKey(p+".host_key", t.HostKey)
	default:
		v.sshKey(p+".host_ca", t.HostCA)
	}
	if len(t.Logins) == 0 {
		v.addf(p+".logins", "at least one login is required")
	}
	for i, l := range t.Logins {
		if !ValidLogin(l) {
			v.addf(fmt.Sprintf("%s.logins[%d]", p, i), "invalid login %q", l)
		}
	}
	v.allow(p+".allow", t.Allow)
	switch t.MFA {
	case "", MFAMaxAge, MFAEveryConnection:
	default:
		v.addf(p+".mfa", "must be %s or %s", MFAMaxAge, MFAEveryConnection)
	}
	for i, f := range t.Forwards {
		host, port, err := net.SplitHostPort(f)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			v.addf(fmt.Sprintf("%s.forwards[%d]", p, i), "must be host:port")
		}
	}
	for i, e := range t.Env {
		if !envRE.MatchString(e) {
			v.addf(fmt.Sprintf("%s.env[%d]", p, i), "invalid variable name %q", e)
		}
	}
	switch t.Record {
	case RecordOff:
	case "", RecordRequired:
	default:
		v.addf(p+".record", "must be %s or %s", RecordRequired, RecordOff)
	}
	if t.Retention != 0 && t.Retention.D() < 24*time.Hour {
		v.addf(p+".retention", "must be at least 1d")
	}
}

// sshKey parses an authorized_keys line with golang.org/x/crypto/ssh, the
// parser the SSH door uses. DESIGN.md lets config import the standard
// library only; this is the one deliberate exception: a key check-config
// accepts must be a key the door can use, and only the real parser can
// promise that (a hand-written one would drift from it). The messages are
// the ones sshgw used when it found a bad key only at start.
func (v *validator) sshKey(path, key string) {
	k, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(key))
	switch {
	case err != nil:
		v.addf(path, "not an SSH public key: %v", err)
	case len(bytes.TrimSpace(rest)) > 0:
		v.addf(path, "more than one key")
	default:
		if _, ok := k.(*ssh.Certificate); ok {
			v.addf(path, "a certificate, want a public key")
		}
	}
}

// recording checks the recording block. Recipients are parsed with
// filippo.io/age, the library package recording encrypts with: like sshKey,
// a deliberate exception to config importing the standard library only, so
// that a recipient check-config accepts is one the recorder can use.
func (v *validator) recording(r Recording) {
	v.absFile("recording.dir", r.Dir, false)
	for i, s := range r.Recipients {
		if _, err := age.ParseX25519Recipient(s); err != nil {
			v.addf(fmt.Sprintf("recording.recipients[%d]", i), "not an age X25519 recipient (age1...): %v", err)
		}
	}
	for i, e := range r.LegalHold {
		v.email(fmt.Sprintf("recording.legal_hold[%d]", i), e)
	}
}

// email checks one bare email address.
func (v *validator) email(path, e string) {
	if addr, err := mail.ParseAddress(e); err != nil || addr.Address != e {
		v.addf(path, "invalid email address %q", e)
	}
}

// maxAlertWindow bounds the alert windows: a window of days would make one
// alert per key per window mean "one alert ever".
const maxAlertWindow = 24 * time.Hour

// alerts checks audit.alerts (after defaults: zero was filled in).
func (v *validator) alerts(a Alerts) {
	for _, f := range []struct {
		path string
		n    int
	}{{"audit.alerts.failures", a.Failures}, {"audit.alerts.denials", a.Denials}} {
		if f.n < 1 {
			v.addf(f.path, "must be at least 1")
		}
	}
	for _, f := range []struct {
		path string
		d    time.Duration
	}{
		{"audit.alerts.failure_window", a.FailureWindow.D()},
		{"audit.alerts.denial_window", a.DenialWindow.D()},
		{"audit.alerts.repeat_after", a.RepeatAfter.D()},
	} {
		if f.d > maxAlertWindow {
			v.addf(f.path, "must be at most %v", maxAlertWindow)
		}
	}
}

// syslog checks audit.syslog: the local daemon (no network, no address),
// or a network with its address.
func (v *validator) syslog(s Syslog) {
	switch s.Network {
	case "":
		if s.Address != "" {
			v.addf("audit.syslog.network", "required with an address (udp, tcp, unix or unixgram)")
		}
	case "udp", "tcp":
		if _, _, err := net.SplitHostPort(s.Address); err != nil {
			v.addf("audit.syslog.address", "must be host:port for %s", s.Network)
		}
	case "unix", "unixgram":
		if !filepath.IsAbs(s.Address) {
			v.addf("audit.syslog.address", "must be an absolute socket path for %s", s.Network)
		}
	default:
		v.addf("audit.syslog.network", "must be udp, tcp, unix or unixgram (or empty for the local syslog)")
	}
}
