package portal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/web"
)

// Cookie names. Every Gatehouse cookie is host-only (the __Host- prefix
// forbids a Domain attribute and requires Secure and Path=/), HttpOnly and
// SameSite=Lax: Lax, not Strict, because the OIDC callback and links from
// terminals arrive as top-level navigations from other sites.
const (
	// SessionCookie holds the sealed session ID on the portal and on every
	// application host (each host its own cookie, sealed for that host).
	// Its name starts with proxy.CookiePrefix, so the hop never forwards it
	// (TestCookieNamesAreStripped checks every name here).
	SessionCookie = "__Host-gatehouse"
	// flowCookie binds an OIDC callback to the browser that started it.
	flowCookie = "__Host-gatehouse-flow"
)

// Request body limits.
const (
	maxFormBytes = 16 << 10
	maxJSONBytes = identity.MaxResponseBytes
)

// approveFreshness is how recent the WebAuthn assertion must be when a
// person approves an SSH connection; the page asks for one right before.
const approveFreshness = 2 * time.Minute

// The identity components the portal uses, as small interfaces so that
// tests can replace the one that needs a real IdP. The identity package's
// types satisfy them.
type (
	portalOIDC interface {
		BeginLogin(ctx context.Context, returnTo string) (authURL, flow string, err error)
		FinishLogin(ctx context.Context, state, code, flow string) (*identity.Login, error)
	}
	portalSessions interface {
		Start(ctx context.Context, l *identity.Login, host string) (*identity.Session, error)
		Lookup(ctx context.Context, id, host string) (*identity.Session, error)
		Revoke(ctx context.Context, handle string) error
		RevokeAll(ctx context.Context, email string) (int, error)
		List(ctx context.Context, email string) ([]identity.Session, error)
		IssueBoundHandoff(ctx context.Context, portalSessionID, host, path, binding string) (string, error)
	}
	portalWebAuthn interface {
		HasCredentials(ctx context.Context, email string) (bool, error)
		BeginRegistration(ctx context.Context, s *identity.Session, invite string) (*protocol.CredentialCreation, error)
		FinishRegistration(ctx context.Context, s *identity.Session, name string, body io.Reader) (*identity.Session, error)
		BeginAssertion(ctx context.Context, s *identity.Session) (*protocol.CredentialAssertion, error)
		FinishAssertion(ctx context.Context, s *identity.Session, body io.Reader) (*identity.Session, error)
		Credentials(ctx context.Context, email string) ([]identity.Credential, error)
		RemoveCredential(ctx context.Context, s *identity.Session, id []byte) error
		RenameCredential(ctx context.Context, s *identity.Session, id []byte, name string) error
	}
	portalApprovals interface {
		Get(ctx context.Context, id string) (*identity.Approval, error)
		ApproveWithCode(ctx context.Context, id string, who authz.Subject, typed string) error
		Deny(ctx context.Context, id string, who authz.Subject) error
	}
	portalLimiter interface {
		Allow(ctx context.Context, endpoint, source, user string) (time.Duration, error)
	}
	// sessionCodec seals session IDs into cookie values bound to a cookie
	// name and host (identity.Codec).
	sessionCodec interface {
		Seal(name, host, sessionID string) (string, error)
		Open(name, host, value string) (string, error)
	}
	// portalAudit is the subset of *audit.Log the portal and app gate use.
	portalAudit interface {
		Log(ctx context.Context, e audit.Event) error
	}
)

// PortalConfig configures the portal. Every field without "optional" is
// required; NewPortal fails closed when one is missing.
type PortalConfig struct {
	// Config supplies public_url, the routes (for the app list and return
	// URLs), mfa.max_age, webauthn.enrollment and the admins to name on
	// denied pages.
	Config *config.Config
	// OIDC runs the SSO login (*identity.OIDC).
	OIDC portalOIDC
	// Sessions keeps sessions and handoff codes (*identity.Sessions).
	Sessions portalSessions
	// WebAuthn runs the key ceremonies (*identity.WebAuthn).
	WebAuthn portalWebAuthn
	// Approvals resolves SSH approvals (*identity.Approvals). Optional: nil
	// means /approve/ answers 404.
	Approvals portalApprovals
	// Limiter rate-limits login, assertion and approval (*identity.Limiter).
	Limiter portalLimiter
	// Codec seals cookies (*identity.Codec).
	Codec sessionCodec
	// Audit records refusals and decisions.
	Audit portalAudit
	// JWKS serves the upstream assertion keys at /.well-known/jwks.json.
	// Optional: nil answers 404.
	JWKS http.Handler
	// Pages renders Gatehouse's pages. Optional: nil parses web's templates.
	Pages *web.Pages
	// Logger receives operational messages. Optional: nil discards them.
	Logger *slog.Logger
	// Now returns the current time. Optional: nil means time.Now.
	Now func() time.Time
	// Revoked is told about every sign-out made on this portal (a session
	// handle, or an email for "everywhere") so that this replica's app
	// gates drop their cached sessions at once instead of within their
	// cache TTL. Optional: nil tells nobody (the TTL still bounds it).
	Revoked func(handle, email string)
	// Review turns on the reviewer console. Optional: its zero value
	// leaves it off (/review/ answers 404).
	Review ReviewConfig
}

// Portal serves the public_url host: sign-in, key enrolment and
// assertion, the home page, sign-out, SSH approvals and the JWKS. Every
// state-changing request is a POST carrying a session-bound CSRF token from
// the portal's own origin. It is safe for concurrent use.
type Portal struct {
	cfg       *config.Config
	public    *url.URL
	origin    string // scheme://host[:port], lower case
	host      string // public host name, lower case, no port
	port      string // public port, "" for 443
	oidc      portalOIDC
	sessions  portalSessions
	webauthn  portalWebAuthn
	approvals portalApprovals
	limiter   portalLimiter
	codec     sessionCodec
	audit     portalAudit
	jwks      http.Handler
	pages     renderer
	static    http.Handler
	logger    *slog.Logger
	now       func() time.Time
	revoked   func(handle, email string)
	review    ReviewConfig
	routes    map[string]*config.Route // by lower-case host
	mux       *http.ServeMux
}

var _ http.Handler = (*Portal)(nil)

// NewPortal checks c and returns a Portal.
func NewPortal(c PortalConfig) (*Portal, error) {
	if c.Config == nil {
		return nil, errors.New("portal: Config is required")
	}
	switch {
	case c.OIDC == nil:
		return nil, errors.New("portal: OIDC is required")
	case c.Sessions == nil:
		return nil, errors.New("portal: Sessions is required")
	case c.WebAuthn == nil:
		return nil, errors.New("portal: WebAuthn is required")
	case c.Limiter == nil:
		return nil, errors.New("portal: Limiter is required")
	case c.Codec == nil:
		return nil, errors.New("portal: Codec is required")
	case c.Audit == nil:
		return nil, errors.New("portal: Audit is required")
	}
	pub, err := parsePublicURL(c.Config.PublicURL)
	if err != nil {
		return nil, err
	}
	p := &Portal{
		cfg:       c.Config,
		public:    pub,
		origin:    strings.ToLower(pub.Scheme + "://" + pub.Host),
		host:      strings.ToLower(pub.Hostname()),
		port:      pub.Port(),
		oidc:      c.OIDC,
		sessions:  c.Sessions,
		webauthn:  c.WebAuthn,
		approvals: c.Approvals,
		limiter:   c.Limiter,
		codec:     c.Codec,
		audit:     c.Audit,
		jwks:      c.JWKS,
		static:    web.Static(),
		logger:    c.Logger,
		now:       c.Now,
		revoked:   c.Revoked,
		review:    c.Review,
		routes:    map[string]*config.Route{},
	}
	if p.port == "443" {
		p.port = ""
	}
	pages := c.Pages
	if pages == nil {
		if pages, err = web.Parse(); err != nil {
			return nil, fmt.Errorf("portal: %w", err)
		}
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	p.pages = renderer{pages: pages, logger: p.logger, link: "/", linkText: "Back to Gatehouse"}
	if p.now == nil {
		p.now = time.Now
	}
	if p.revoked == nil {
		p.revoked = func(string, string) {}
	}
	for i := range c.Config.Routes {
		r := &c.Config.Routes[i]
		p.routes[strings.ToLower(r.Host)] = r
	}
	p.mux = p.routesMux()
	return p, nil
}

// parsePublicURL checks that public_url is an https URL with a host and
// nothing but a host (and port).
func parsePublicURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("portal: public_url %q must be an https URL with a host", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("portal: public_url %q must not have a path", raw)
	}
	return u, nil
}

func (p *Portal) routesMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", p.home)
	m.Handle("GET /static/", p.static)
	m.HandleFunc("GET /.well-known/jwks.json", p.serveJWKS)

	m.HandleFunc("GET /auth/login", p.login)
	m.HandleFunc("GET /auth/callback", p.callback)
	m.HandleFunc("GET /auth/verify", p.verify)
	m.HandleFunc("GET /auth/stepup", p.stepUp)
	m.HandleFunc("POST /auth/logout", p.logout)
	m.HandleFunc("GET /enroll", p.enrollInvite)
	m.HandleFunc("GET /enroll/{token}", p.enrollInvite)

	m.HandleFunc("POST /auth/webauthn/register/begin", p.registerBegin)
	m.HandleFunc("POST /auth/webauthn/register/finish", p.registerFinish)
	m.HandleFunc("POST /auth/webauthn/assert/begin", p.assertBegin)
	m.HandleFunc("POST /auth/webauthn/assert/finish", p.assertFinish)

	m.HandleFunc("GET /keys/add", p.keysAdd)
	m.HandleFunc("POST /keys/rename", p.keysRename)
	m.HandleFunc("POST /keys/remove", p.keysRemove)
	m.HandleFunc("POST /sessions/signout", p.sessionsSignOut)
	m.HandleFunc("POST /sessions/signout-all", p.sessionsSignOutAll)

	m.HandleFunc("GET /approve/{id}", p.approvePage)
	m.HandleFunc("POST /approve/{id}", p.approvePost)
	p.reviewRoutes(m)
	return m
}

// ServeHTTP serves one request on the public host. It attaches the client
// (address and browser) to the context for identity's audit events and
// session records, and answers anything not handled with a 404 page.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := identity.WithClient(r.Context(), identity.Client{Source: r.RemoteAddr, UserAgent: r.UserAgent()})
	r = r.WithContext(ctx)
	h, pattern := p.mux.Handler(r)
	if pattern == "" {
		// No route: the mux would answer 404 or 405 in plain text; answer
		// with a page instead, keeping the status.
		rec := &statusOnly{}
		h.ServeHTTP(rec, r)
		code := rec.code
		if code == 0 || code == http.StatusOK {
			code = http.StatusNotFound
		}
		if code == http.StatusMethodNotAllowed {
			if allow := rec.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
			}
		}
		p.message(w, r, code, http.StatusText(code), "There is nothing here.", nil)
		return
	}
	// The mux serves matched requests itself: Handler does not set the
	// request's path values.
	p.mux.ServeHTTP(w, r)
}

// statusOnly captures the status and headers of the mux's own 404/405
// answer without sending it.
type statusOnly struct {
	header http.Header
	code   int
}

func (s *statusOnly) Header() http.Header {
	if s.header == nil {
		s.header = http.Header{}
	}
	return s.header
}
func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusOnly) WriteHeader(code int)        { s.code = code }

func (p *Portal) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if p.jwks == nil {
		p.message(w, r, http.StatusNotFound, "Not found", "No keys are published.", nil)
		return
	}
	p.jwks.ServeHTTP(w, r)
}

// The identity package's types satisfy the portal's interfaces.
var (
	_ portalOIDC      = (*identity.OIDC)(nil)
	_ portalSessions  = (*identity.Sessions)(nil)
	_ portalWebAuthn  = (*identity.WebAuthn)(nil)
	_ portalApprovals = (*identity.Approvals)(nil)
	_ portalLimiter   = (*identity.Limiter)(nil)
	_ sessionCodec    = (*identity.Codec)(nil)
)
