package portal

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// reserved serves Gatehouse's own paths on the app host.
func (a *App) reserved(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == handoffPath && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		a.handoff(w, r)
	case strings.HasPrefix(r.URL.Path, appStaticPath):
		a.static.ServeHTTP(w, r)
	default:
		a.pages.message(w, r, http.StatusNotFound, "Not found", "There is nothing here.", nil)
	}
}

// handoff redeems a one-time code from the portal: it opens an app session
// for this host, sets the host cookie and continues at the path stored with
// the code (never a URL from the request). A bad, used or expired code
// starts the sign-in again.
func (a *App) handoff(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("code")
	if code == "" || len(code) > 256 {
		http.Redirect(w, r, a.portal+"/auth/login?rd="+url.QueryEscape("https://"+a.hostPort+"/"), http.StatusFound)
		return
	}
	// identity audits the redemption (both ways) and records the client
	// on the new app session.
	ctx := identity.WithClient(r.Context(), identity.Client{Source: r.RemoteAddr, UserAgent: r.UserAgent()})
	s, path, err := a.sessions.RedeemHandoff(ctx, code, a.host)
	if err != nil {
		if !errors.Is(err, identity.ErrNotFound) && !errors.Is(err, identity.ErrForbidden) && !errors.Is(err, identity.ErrLocked) {
			a.pages.message(w, r, http.StatusServiceUnavailable, "Gatehouse is unavailable",
				"Gatehouse cannot check your sign-in right now. Try again in a moment.", err)
			return
		}
		http.Redirect(w, r, a.portal+"/auth/login?rd="+url.QueryEscape("https://"+a.hostPort+"/"), http.StatusFound)
		return
	}
	value, err := a.codec.Seal(SessionCookie, a.host, s.ID)
	if err != nil {
		a.pages.message(w, r, http.StatusServiceUnavailable, "Gatehouse is unavailable",
			"Gatehouse cannot sign you in right now. Try again in a moment.", err)
		return
	}
	maxAge := time.Duration(0)
	if !s.Expires.IsZero() {
		maxAge = s.Expires.Sub(a.now())
		if maxAge <= 0 {
			maxAge = -1
		}
	}
	setCookie(w, SessionCookie, value, maxAge)
	if !localPath(path) {
		path = "/"
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, path, http.StatusFound)
}

// localPath reports whether p is a path on this host: one leading slash,
// not "//" or "/\", no control characters or backslashes.
func localPath(p string) bool {
	if p == "" || p[0] != '/' || (len(p) > 1 && (p[1] == '/' || p[1] == '\\')) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}
