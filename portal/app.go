package portal

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gatehouse-dev/gatehouse/assertion"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/web"
)

// Paths under reservedPrefix on an app host belong to Gatehouse and never
// reach the upstream.
const (
	reservedPrefix = "/.gatehouse/"
	handoffPath    = reservedPrefix + "handoff"
	appStaticPath  = reservedPrefix + "static/"
)

// maxReturnURI bounds the request URI an app host passes to the portal as
// the return URL; longer ones return to the app's root instead.
const maxReturnURI = 1800

// appSessions is the subset of *identity.Sessions the app gate uses.
type appSessions interface {
	sessionLookup
	RedeemBoundHandoff(ctx context.Context, code, host, nonce string) (*identity.Session, string, error)
}

var _ appSessions = (*identity.Sessions)(nil)

// AppDeps are what every app gate shares.
type AppDeps struct {
	// Config supplies public_url, mfa.max_age and the admins named on the
	// denied page. Required.
	Config *config.Config
	// Codec opens the host cookie (*identity.Codec). Required.
	Codec sessionCodec
	// Sessions looks up sessions and redeems handoff codes
	// (*identity.Sessions). Required.
	Sessions appSessions
	// Audit records denials and new app sessions. Required.
	Audit portalAudit
	// Pages renders the denied and error pages. If nil, web's templates
	// are parsed.
	Pages *web.Pages
	// Logger receives operational messages; if nil, they are discarded.
	Logger *slog.Logger
	// Now returns the current time; if nil, time.Now is used.
	Now func() time.Time
	// CacheTTL is how long a verified cookie is trusted without a store
	// lookup (see appCache for the revocation trade-off). Zero means
	// DefaultAppCacheTTL; negative turns the cache off.
	CacheTTL time.Duration
}

// App is the gate in front of one route's host: it admits a request only
// with a valid session for this host that the route's policy allows, and
// hands it to the upstream. It is safe for concurrent use.
type App struct {
	route      *config.Route
	host       string // route host, lower case
	hostPort   string // host plus the public port when it is not 443
	portal     string // public_url origin, e.g. https://gate.example.com
	defaultMFA time.Duration
	admins     []string
	upstream   http.Handler
	codec      sessionCodec
	sessions   appSessions
	audit      portalAudit
	pages      renderer
	static     http.Handler
	logger     *slog.Logger
	now        func() time.Time
	cache      *appCache
	// lookups joins concurrent cache misses for the same sealed cookie
	// (every request of a busy session when its entry expires) into one
	// open and one store read. Keyed by the cookie value, a result is only
	// ever shared between requests carrying that same cookie.
	lookups singleflight.Group
	stepUps *stepUps
}

var _ http.Handler = (*App)(nil)

// NewApp returns the gate for route in front of upstream, the hop that
// carries admitted requests to the application (proxy.Upstream). The gate
// hands it each admitted request with the person's identity in the
// context (assertion.WithSubject).
func NewApp(route config.Route, upstream http.Handler, d AppDeps) (*App, error) {
	switch {
	case upstream == nil:
		return nil, fmt.Errorf("app %s: upstream is required", route.Name)
	case d.Config == nil:
		return nil, fmt.Errorf("app %s: Config is required", route.Name)
	case d.Codec == nil:
		return nil, fmt.Errorf("app %s: Codec is required", route.Name)
	case d.Sessions == nil:
		return nil, fmt.Errorf("app %s: Sessions is required", route.Name)
	case d.Audit == nil:
		return nil, fmt.Errorf("app %s: Audit is required", route.Name)
	case route.Host == "":
		return nil, fmt.Errorf("app %s: route has no host", route.Name)
	}
	pub, err := parsePublicURL(d.Config.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", route.Name, err)
	}
	rt := route
	a := &App{
		route:      &rt,
		host:       strings.ToLower(route.Host),
		portal:     strings.ToLower(pub.Scheme + "://" + pub.Host),
		defaultMFA: d.Config.MFA.MaxAge.D(),
		admins:     askList(d.Config.Admins),
		upstream:   upstream,
		codec:      d.Codec,
		sessions:   d.Sessions,
		audit:      d.Audit,
		static:     web.StaticAt(appStaticPath),
		logger:     d.Logger,
		now:        d.Now,
	}
	a.hostPort = a.host
	if port := pub.Port(); port != "" && port != "443" {
		a.hostPort = a.host + ":" + port
	}
	pages := d.Pages
	if pages == nil {
		if pages, err = web.Parse(); err != nil {
			return nil, fmt.Errorf("app %s: %w", route.Name, err)
		}
	}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	a.logger = a.logger.With("route", route.Name)
	a.pages = renderer{pages: pages, logger: a.logger, home: a.portal + "/", assets: appStaticPath,
		link: a.portal + "/", linkText: "Go to Gatehouse"}
	if a.now == nil {
		a.now = time.Now
	}
	ttl := d.CacheTTL
	if ttl == 0 {
		ttl = DefaultAppCacheTTL
	}
	a.cache = newAppCache(ttl)
	a.stepUps = newStepUps()
	return a, nil
}

// askList names the admins for the denied page.
func askList(a config.Allow) []string {
	var out []string
	for _, g := range a.Groups {
		out = append(out, "members of the group "+g)
	}
	out = append(out, a.Emails...)
	return out
}

// statusClientClosed is nginx's status for a request whose client went
// away before the answer.
const statusClientClosed = 499

// ServeHTTP admits or refuses one request.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, reservedPrefix) {
		a.reserved(w, r)
		return
	}
	now := a.now()
	e, ok, err := a.who(r, now)
	if err != nil && r.Context().Err() != nil {
		// The client hung up while its session was looked up: nobody reads
		// an answer, and a 503 would count as an outage. 499 is nginx's
		// "client closed request", which the front counts apart.
		w.WriteHeader(statusClientClosed)
		return
	}
	if err != nil {
		a.pages.message(w, r, http.StatusServiceUnavailable, "Gatehouse is unavailable",
			"Gatehouse cannot check your sign-in right now. Try again in a moment.", err)
		return
	}
	if !ok {
		a.startTrip(w, r, "/auth/login")
		return
	}
	d := authz.DecideRoute(e.who, a.route, a.defaultMFA, r.URL.Path, now)
	switch {
	case d.Allow:
		a.upstream.ServeHTTP(w, r.WithContext(assertion.WithSubject(r.Context(), e.who)))
	case d.NeedMFA && a.stepUps.loops(e.stepUpKey(d.Rule), e.who.MFAAt, now):
		a.stepUpLoop(w, r, e, d, now)
	case d.NeedMFA:
		a.stepUps.sent(e.stepUpKey(d.Rule), now)
		a.startTrip(w, r, "/auth/stepup")
	default:
		a.denied(w, r, e, d)
	}
}

// who returns the session behind the request's host cookie. ok is false
// when there is none or it is not valid (absent, malformed, forged,
// tampered, sealed for another host, expired, revoked); err is set only
// when the store cannot answer, so the caller fails closed.
func (a *App) who(r *http.Request, now time.Time) (e cacheEntry, ok bool, err error) {
	value := sessionCookieValue(r.Header)
	if value == "" {
		return e, false, nil
	}
	if e, ok := a.cache.get(value, now); ok {
		return e, true, nil
	}
	v, err, _ := a.lookups.Do(value, func() (any, error) {
		gen := a.cache.generation()
		// Not the first caller's cancellation: the others wait on it.
		s, err := cookieSession(context.WithoutCancel(r.Context()), a.codec, a.sessions, a.host, value)
		if s == nil || err != nil {
			return nil, err
		}
		e := cacheEntry{who: s.Subject(), handle: s.Handle, parent: s.Parent}
		a.cache.fill(gen, value, e.who, s.Handle, s.Parent, now, s.Expires)
		return e, nil
	})
	if err == nil && r.Context().Err() != nil {
		err = r.Context().Err()
	}
	if v == nil || err != nil {
		return e, false, err
	}
	return v.(cacheEntry), true, nil
}

// returnURL is the exact URL the person asked for, to come back to after
// signing in. The host is the route's own (never the client's Host header).
func (a *App) returnURL(r *http.Request) string {
	uri := r.URL.RequestURI()
	if len(uri) > maxReturnURI || !strings.HasPrefix(uri, "/") {
		uri = "/"
	}
	return "https://" + a.hostPort + uri
}

// denied audits a policy refusal and shows who to ask, with a request ID.
func (a *App) denied(w http.ResponseWriter, r *http.Request, e cacheEntry, d authz.Decision) {
	rid := newRequestID()
	a.logAudit(r, audit.Event{Type: "http.access", Actor: e.who.Email, Resource: "route:" + a.route.Name,
		Action: r.Method + " " + truncate(r.URL.Path, 256), Decision: audit.Deny, Reason: d.Reason,
		Source: r.RemoteAddr, Session: shortID16(e.handle), Details: map[string]string{"request_id": rid, "rule": d.Rule}})
	a.pages.render(w, r, http.StatusForbidden, "denied", web.Page{Title: "Access denied", Email: e.who.Email, RequestID: rid,
		Body: web.Denied{Resource: a.route.Name, Reason: d.Reason, Rule: d.Rule, Ask: a.admins}})
}

func (a *App) logAudit(r *http.Request, e audit.Event) {
	if err := a.audit.Log(r.Context(), e); err != nil {
		a.logger.ErrorContext(r.Context(), "Audit log failed.", "type", e.Type, "error", err)
	}
}

// shortID16 shortens a session handle the way identity's audit events do.
func shortID16(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

// Forget drops the cached sessions of the session with handle (an app
// session's own or its portal session's) and, when email is set, of that
// person, so that a sign-out on this replica ends access here at once.
// NewWeb connects it to the portal's sign-outs.
func (a *App) Forget(handle, email string) { a.cache.forget(handle, email) }

// ForgetUser drops every cached session of the person with email, so that
// their next request asks the store, which refuses a locked person. serve
// calls it on every replica when a lock is published.
func (a *App) ForgetUser(email string) { a.cache.forgetUser(email) }
