package portal

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/web"
)

// render writes page name with status (see renderer).
func (p *Portal) render(w http.ResponseWriter, r *http.Request, status int, name string, pg web.Page) {
	p.pages.render(w, r, status, name, pg)
}

// message renders a notice or error page (see renderer).
func (p *Portal) message(w http.ResponseWriter, r *http.Request, status int, heading, text string, err error) {
	p.pages.message(w, r, status, heading, text, err)
}

// jsonReply writes v as JSON with status.
func jsonReply(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// jsonError answers a ceremony endpoint with a message for the person and
// logs err with a request ID.
func (p *Portal) jsonError(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	rid := newRequestID()
	if err != nil {
		p.logger.WarnContext(r.Context(), "Portal request failed.", "request_id", rid,
			"path", r.URL.Path, "status", status, "error", err)
	}
	w.Header().Set("X-Request-Id", rid)
	jsonReply(w, status, map[string]string{"error": msg, "request_id": rid})
}

// setCookie sets a host-only, Secure, HttpOnly, SameSite=Lax cookie; a
// negative maxAge deletes it, zero makes it a browser-session cookie.
func setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	switch {
	case maxAge < 0:
		c.Value = ""
		c.MaxAge = -1
	case maxAge > 0:
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

// session returns the portal session of r, or nil when the request carries
// no valid one (absent, malformed, forged, tampered, expired or revoked:
// they all look the same to the person: sign in again). A store failure is
// returned as an error so that callers fail closed with a 503.
func (p *Portal) session(r *http.Request) (*identity.Session, error) {
	return cookieSession(r.Context(), p.codec, p.sessions, p.host, sessionCookieValue(r.Header))
}

// allowedHost reports whether hostport names the portal or a route on the
// portal's HTTPS port, the only places a return URL may lead.
func (p *Portal) allowedHost(hostport string) bool {
	host, port := hostport, ""
	if h, pt, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, pt
	}
	if port == "443" {
		port = ""
	}
	if port != p.port {
		return false
	}
	host = strings.ToLower(host)
	return host == p.host || p.routes[host] != nil
}

// safeReturn checks a return URL: a relative path on the portal or an https
// URL on the portal or a route host. Anything else (other hosts, other
// schemes, "//evil", "/\evil", control characters) becomes "/".
func (p *Portal) safeReturn(raw string) string {
	if raw == "" {
		return "/"
	}
	u, ok := identity.SafeReturn(raw, p.allowedHost)
	if !ok || !returnShapeOK(u) {
		return "/"
	}
	return u
}

// returnShapeOK is the portal's own, independent check of a URL identity
// accepted: a path starting with exactly one slash, or https://HOST/...
// with no backslash, control character or userinfo.
func returnShapeOK(u string) bool {
	for i := 0; i < len(u); i++ {
		if c := u[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	if strings.HasPrefix(u, "/") {
		return len(u) == 1 || (u[1] != '/' && u[1] != '\\')
	}
	pu, err := url.Parse(u)
	return err == nil && pu.Scheme == "https" && pu.User == nil && pu.Host != "" && pu.Opaque == ""
}

// continueTo returns where a full session goes after sign-in or step-up for
// the (already checked) trip t: a portal path as is, or for a route host a
// handoff URL carrying a fresh one-time code for that host, bound to the
// browser that started the trip. Without a binding (a link to the portal
// that no app gate made) it returns the app URL itself: its gate starts a
// bound trip, which comes back here with one.
func (p *Portal) continueTo(r *http.Request, s *identity.Session, t trip) (string, error) {
	if strings.HasPrefix(t.rd, "/") {
		return t.rd, nil
	}
	u, err := url.Parse(t.rd)
	if err != nil {
		return "/", nil
	}
	host := strings.ToLower(u.Hostname())
	if host == p.host {
		return pathAndQuery(u), nil
	}
	if p.routes[host] == nil {
		return "/", nil
	}
	if t.bind == "" {
		return t.rd, nil
	}
	code, err := p.sessions.IssueBoundHandoff(r.Context(), s.ID, host, pathAndQuery(u), t.bind)
	if errors.Is(err, identity.ErrForbidden) {
		// A path identity will not carry: lose the destination, never
		// show an error for a bad return URL.
		return "/", nil
	}
	if err != nil {
		return "", err
	}
	return "https://" + p.hostPort(host) + handoffPath + "?code=" + url.QueryEscape(code), nil
}

// hostPort returns host with the portal's port, if it is not 443.
func (p *Portal) hostPort(host string) string {
	if p.port == "" {
		return host
	}
	return net.JoinHostPort(host, p.port)
}

// pathAndQuery returns u's escaped path (at least "/") and query.
func pathAndQuery(u *url.URL) string {
	pq := u.EscapedPath()
	if pq == "" || pq[0] != '/' {
		pq = "/" + pq
	}
	if u.RawQuery != "" {
		pq += "?" + u.RawQuery
	}
	return pq
}

// withRD returns path with the return URL rd as its "rd" parameter.
func withRD(path, rd string) string {
	if rd == "" || rd == "/" {
		return path
	}
	return path + "?rd=" + url.QueryEscape(rd)
}

// routeName returns the name of the route a return URL leads to, or "".
func (p *Portal) routeName(rd string) string {
	if strings.HasPrefix(rd, "/") {
		return ""
	}
	u, err := url.Parse(rd)
	if err != nil {
		return ""
	}
	if rt := p.routes[strings.ToLower(u.Hostname())]; rt != nil {
		return rt.Name
	}
	return ""
}

// limited applies the rate limit for endpoint and, when it refuses, answers
// 429 (a page or JSON) and reports true. A limiter failure also refuses:
// fail closed.
func (p *Portal) limited(w http.ResponseWriter, r *http.Request, endpoint, user string, asJSON bool) bool {
	wait, err := p.limiter.Allow(r.Context(), endpoint, r.RemoteAddr, user)
	if err == nil {
		return false
	}
	// A limiter that cannot count (the store is down) is not a person
	// trying too often: say which, so neither she nor an operator chases
	// the wrong cause.
	status, title, msg := http.StatusServiceUnavailable, "Gatehouse is unavailable", "Gatehouse cannot check this request right now. Try again shortly."
	if errors.Is(err, identity.ErrRateLimited) {
		status, title, msg = http.StatusTooManyRequests, "Too many attempts", "Too many attempts. Wait a minute and try again."
		if wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		}
	}
	if asJSON {
		p.jsonError(w, r, status, msg, err)
	} else {
		p.message(w, r, status, title, msg, err)
	}
	return true
}

// refuse audits a refused state-changing request (bad CSRF token or
// origin) and answers 403.
func (p *Portal) refuse(w http.ResponseWriter, r *http.Request, who, reason string, asJSON bool) {
	rid := newRequestID()
	p.logAudit(r, audit.Event{
		Type: "portal.request", Actor: who, Action: r.Method + " " + r.URL.Path,
		Decision: audit.Deny, Reason: reason, Source: r.RemoteAddr,
		Details: map[string]string{"request_id": rid},
	})
	msg := "This request was refused because it did not come from a Gatehouse page. Reload the page and try again."
	if asJSON {
		w.Header().Set("X-Request-Id", rid)
		jsonReply(w, http.StatusForbidden, map[string]string{"error": msg, "request_id": rid})
		return
	}
	p.render(w, r, http.StatusForbidden, "error", web.Page{Title: "Request refused", RequestID: rid,
		Body: web.Message{Status: http.StatusForbidden, Heading: "Request refused", Text: msg, Link: "/", LinkText: "Back to Gatehouse"}})
}

// checkPost verifies that a state-changing request comes from the portal's
// origin and carries the session's CSRF token; otherwise it refuses the
// request and reports false.
func (p *Portal) checkPost(w http.ResponseWriter, r *http.Request, s *identity.Session, asJSON bool) bool {
	if !sameOrigin(r, p.origin) {
		p.refuse(w, r, s.Email, "cross-origin request", asJSON)
		return false
	}
	if !csrfValid(s.ID, csrfFrom(r)) {
		p.refuse(w, r, s.Email, "missing or wrong CSRF token", asJSON)
		return false
	}
	return true
}

// logAudit records e; a failure is logged (the request it describes was a
// refusal or is already complete).
func (p *Portal) logAudit(r *http.Request, e audit.Event) {
	if err := p.audit.Log(r.Context(), e); err != nil {
		p.logger.ErrorContext(r.Context(), "Audit log failed.", "type", e.Type, "error", err)
	}
}

// page returns a Page for a session's person.
func (p *Portal) page(s *identity.Session, title string, body any) web.Page {
	pg := web.Page{Title: title, Body: body}
	if s != nil {
		pg.Email = s.Email
		pg.CSRF = csrfToken(s.ID)
	}
	return pg
}
