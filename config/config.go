// Package config holds Gatehouse's configuration types, the strict YAML
// loader and Validate. The YAML key names are a contract with users (see
// DESIGN.md): keys may be added, never renamed. Unknown keys are errors,
// because a typo must never silently weaken policy.
package config

// Config is the whole configuration file.
type Config struct {
	// PublicURL is the portal's URL; its host is the WebAuthn RP ID and the
	// OIDC redirect URI is PublicURL + "/auth/callback".
	PublicURL string    `yaml:"public_url"`
	Listen    Listen    `yaml:"listen"`
	TLS       TLS       `yaml:"tls"`
	DataDir   string    `yaml:"data_dir"`
	Redis     *Redis    `yaml:"redis"` // nil: embedded store only
	Secrets   Secrets   `yaml:"secrets"`
	SSO       SSO       `yaml:"sso"`
	MFA       MFA       `yaml:"mfa"`
	WebAuthn  WebAuthn  `yaml:"webauthn"`
	Routes    []Route   `yaml:"routes"`
	Targets   []Target  `yaml:"targets"`
	Reviewers Allow     `yaml:"reviewers"`
	Admins    Allow     `yaml:"admins"`
	Audit     Audit     `yaml:"audit"`
	Recording Recording `yaml:"recording"`
	Log       Log       `yaml:"log"`
	// ShutdownTimeout bounds how long SIGTERM waits for connections to drain.
	// Zero means 15s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// Listen names the addresses Gatehouse listens on. An empty address means
// that listener is off (admin defaults to 127.0.0.1:9090).
type Listen struct {
	HTTPS string `yaml:"https"`
	SSH   string `yaml:"ssh"`
	HTTP  string `yaml:"http"` // ACME HTTP-01 and redirect to HTTPS only
	Admin string `yaml:"admin"`
}

// TLS modes.
const (
	TLSModeACME       = "acme"
	TLSModeFiles      = "files"
	TLSModeSelfSigned = "self_signed"
)

// TLS configures the HTTPS listener's certificates and protocol floor.
type TLS struct {
	Mode       string `yaml:"mode"`        // acme | files | self_signed
	MinVersion string `yaml:"min_version"` // "1.2" (default) or "1.3"
	ACME       ACME   `yaml:"acme"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
}

// ACME configures certmagic's ACME issuer.
type ACME struct {
	Email     string   `yaml:"email"`
	Directory string   `yaml:"directory"` // empty: Let's Encrypt production
	CARoots   []string `yaml:"ca_roots"`  // PEM files trusted for the ACME server
}

// Redis configures shared state for several replicas.
type Redis struct {
	Addr         string    `yaml:"addr"`          // host:port; or sentinel instead
	Sentinel     *Sentinel `yaml:"sentinel"`      // nil: addr is the server
	Username     string    `yaml:"username"`      // ACL user; empty: the default user
	PasswordFile string    `yaml:"password_file"` // never an inline password
	DB           int       `yaml:"db"`
	TLS          *RedisTLS `yaml:"tls"`    // nil: plain TCP
	Prefix       string    `yaml:"prefix"` // key namespace; default DefaultRedisPrefix
}

// Sentinel finds the Redis master through Redis Sentinel and follows it
// across failovers.
type Sentinel struct {
	MasterName   string   `yaml:"master_name"`
	Addrs        []string `yaml:"addrs"`         // host:port of each Sentinel
	Username     string   `yaml:"username"`      // Sentinel ACL user; empty: none
	PasswordFile string   `yaml:"password_file"` // Sentinel password; empty: none
}

// RedisTLS makes the Redis connection use TLS. Certificate verification
// cannot be turned off: a Redis impostor would hold every session.
type RedisTLS struct {
	CAFile     string `yaml:"ca_file"`     // PEM roots; empty: the system roots
	ServerName string `yaml:"server_name"` // name to verify; empty: addr's host
}

// SSO configures the OIDC identity provider.
type SSO struct {
	Issuer           string   `yaml:"issuer"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	GroupsClaim      string   `yaml:"groups_claim"` // default "groups"
	CARoots          []string `yaml:"ca_roots"`     // extra PEM roots for the issuer
	Scopes           []string `yaml:"scopes"`       // default openid email profile groups
}

// MFA sets the default freshness of the WebAuthn assertion.
type MFA struct {
	MaxAge Duration `yaml:"max_age"` // default 12h
}

// WebAuthn enrolment modes.
const (
	EnrollmentOpen   = "open"
	EnrollmentInvite = "invite"
)

// WebAuthn configures enrolment of security keys and passkeys.
type WebAuthn struct {
	// Enrollment is "open" (default: first enrolment right after SSO) or
	// "invite" (first enrolment needs a link from `gatehouse enroll-link`).
	Enrollment string `yaml:"enrollment"`
}

// Allow lists who may enter. An empty Allow denies everyone.
type Allow struct {
	Groups       []string `yaml:"groups"`
	Emails       []string `yaml:"emails"`
	EmailDomains []string `yaml:"email_domains"`
}

// Empty reports whether a lists nobody.
func (a Allow) Empty() bool {
	return len(a.Groups) == 0 && len(a.Emails) == 0 && len(a.EmailDomains) == 0
}

// Route maps one public host to one upstream web application.
type Route struct {
	Name      string     `yaml:"name"`
	Host      string     `yaml:"host"`
	Upstream  string     `yaml:"upstream"`
	Allow     Allow      `yaml:"allow"`
	MFAMaxAge Duration   `yaml:"mfa_max_age"` // zero: mfa.max_age
	Paths     []PathRule `yaml:"paths"`
	// Timeout bounds the wait for the upstream's response headers; zero: 30s.
	Timeout Duration `yaml:"timeout"`
	// AllowEncodedSlashes lets "%2F" in a request path through unchanged
	// for upstreams that need it (GitLab-style project IDs); every other
	// unsafe spelling is still refused. Path rules are refused on such a
	// route, because "/a%2Fb" and "/a/b" may name the same resource there.
	AllowEncodedSlashes bool `yaml:"allow_encoded_slashes"`
	// WebSocketOrigins lists origins (https://host[:port]) besides the
	// route's own from which a browser may open a WebSocket.
	WebSocketOrigins []string `yaml:"websocket_origins"`
	// StripHeaders names request headers removed before the hop, on top of
	// the identity and URL-override families Gatehouse always removes.
	StripHeaders []string `yaml:"strip_headers"`
	// IdentityHeaders fills request headers with the admitted identity:
	// header name -> one of IdentityFields (e.g. X-WEBAUTH-USER: email for
	// Grafana's auth proxy).
	IdentityHeaders map[string]string `yaml:"identity_headers"`
}

// Identity fields a route may put into identity_headers.
const (
	IdentityEmail  = "email"
	IdentityUser   = "user"
	IdentityGroups = "groups"
	IdentityName   = "name"
)

// IdentityFields are the values identity_headers accepts.
func IdentityFields() []string {
	return []string{IdentityEmail, IdentityUser, IdentityGroups, IdentityName}
}

// PathRule gives requests under a path prefix their own allow list.
type PathRule struct {
	Prefix    string   `yaml:"prefix"`
	Allow     Allow    `yaml:"allow"`
	MFAMaxAge Duration `yaml:"mfa_max_age"`
}

// Target MFA modes.
const (
	MFAMaxAge          = "max_age"
	MFAEveryConnection = "every_connection"
)

// Target recording modes.
const (
	RecordRequired = "required"
	RecordOff      = "off"
)

// Target is one SSH server behind the bastion.
type Target struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	// HostKey pins the target's host key (authorized_keys format); HostCA
	// accepts host certificates from that CA instead. Exactly one is set.
	HostKey   string   `yaml:"host_key"`
	HostCA    string   `yaml:"host_ca"`
	Logins    []string `yaml:"logins"`
	Allow     Allow    `yaml:"allow"`
	MFA       string   `yaml:"mfa"`         // max_age (default) | every_connection
	MFAMaxAge Duration `yaml:"mfa_max_age"` // zero: mfa.max_age
	// Forwards lists the host:port destinations allowed for direct-tcpip.
	Forwards      []string `yaml:"forwards"`
	RemoteForward bool     `yaml:"remote_forward"`
	AgentForward  bool     `yaml:"agent_forward"`
	X11           bool     `yaml:"x11"`
	Env           []string `yaml:"env"`    // environment variable names passed on
	Record        string   `yaml:"record"` // required (default) | off
	Retention     Duration `yaml:"retention"`
	IdleTimeout   Duration `yaml:"idle_timeout"` // zero: 30m
	MaxSession    Duration `yaml:"max_session"`  // zero: 12h
}

// Recording configures session recording beyond each target's record and
// retention.
type Recording struct {
	// Dir holds the encrypted recordings; default data_dir/recordings. With
	// several replicas it is a directory they all mount (NFS, a shared
	// volume), so that any replica's reviewer console can replay and verify
	// a session recorded on another; the index lives in the shared store.
	Dir string `yaml:"dir"`
	// Recipients are extra age X25519 recipients ("age1..."), typically
	// offline reviewer keys: every recording is also encrypted to them, so
	// it can be read with the age tool away from the server.
	Recipients []string `yaml:"recipients"`
	// LegalHold lists people (emails as the IdP reports them) whose
	// recordings neither purge nor retention may delete.
	LegalHold []string `yaml:"legal_hold"`
}

// Audit configures where audit events go besides the file in data_dir,
// and which patterns raise alert events.
type Audit struct {
	Stdout  bool     `yaml:"stdout"`
	Webhook *Webhook `yaml:"webhook"`
	Syslog  *Syslog  `yaml:"syslog"` // nil: no syslog copy
	Alerts  Alerts   `yaml:"alerts"`
}

// Alerts sets the thresholds of the alert rules. Every field has a default
// (ApplyDefaults); an alert event names its rule, the person or source, the
// count and the window, and a rule raises at most one alert per person or
// source per window.
type Alerts struct {
	// Failures failed SSH approvals or WebAuthn assertions by one person
	// within FailureWindow raise an alert. Defaults 5 and 10m.
	Failures      int      `yaml:"failures"`
	FailureWindow Duration `yaml:"failure_window"`
	// Denials refusals from one source address (or of one person) within
	// DenialWindow raise an alert. Defaults 10 and 1m.
	Denials      int      `yaml:"denials"`
	DenialWindow Duration `yaml:"denial_window"`
	// RepeatAfter: the immediate rules (a locked person's attempt, a
	// recording that fails verification, a security key's counter going
	// back) alert on the first event, then again for the same person or
	// recording only after this long. Default 10m.
	RepeatAfter Duration `yaml:"repeat_after"`
}

// Syslog copies every audit event to syslog (alerts at severity warning,
// facility authpriv), best effort: the webhook is the lossless copy.
type Syslog struct {
	// Network is udp, tcp, unix or unixgram; empty (with an empty Address)
	// means the local syslog daemon.
	Network string `yaml:"network"`
	Address string `yaml:"address"` // host:port, or a socket path for unix and unixgram
	Tag     string `yaml:"tag"`     // default "gatehouse"
}

// Webhook posts audit events to an HTTP endpoint with an HMAC signature.
type Webhook struct {
	URL        string `yaml:"url"`
	SecretFile string `yaml:"secret_file"`
}

// Log configures Gatehouse's own operational log (not the audit log).
type Log struct {
	Format string `yaml:"format"` // json (default) | text
	Level  string `yaml:"level"`  // debug | info (default) | warn | error
}

// DefaultMasterKeyName is the master key's file in data_dir when
// secrets.master_key_file is absent.
const DefaultMasterKeyName = "master.key"

// Secrets configures encryption at rest of the SSH CAs and host key, the
// assertion signing keys and the cookie key ring (package secrets).
type Secrets struct {
	// MasterKeyFile holds the master key: the standard base64 of 32 random
	// bytes (openssl rand -base64 32), mode 0600. Absent: data_dir/master.key,
	// created on first start (ApplyDefaults sets it and MasterKeyDefault).
	MasterKeyFile string `yaml:"master_key_file"`
	// PreviousMasterKeyFiles are older master keys kept during a rotation:
	// values they sealed still open, and `gatehouse rekey` reseals them
	// with MasterKeyFile.
	PreviousMasterKeyFiles []string `yaml:"previous_master_key_files"`
	// MasterKeyDefault reports that MasterKeyFile is the default in
	// data_dir, which Gatehouse may create; a configured file must exist.
	MasterKeyDefault bool `yaml:"-"`
}
