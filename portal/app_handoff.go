package portal

import (
	"errors"
	"net/http"
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
// the code (never a URL from the request). The code is bound to the
// browser that started the trip (its trip cookie, see startTrip), which is
// cleared here whatever happens: a trip ends with its handoff.
//
// A code presented without this browser's trip nonce is refused and burnt,
// and this browser's own session cookie, if any, is left alone: a handoff
// URL opened in another browser signs nobody in there (login CSRF). The
// price is that the browser that started the trip cannot use a code that
// another browser opened first; it restarts the sign-in instead, which
// with its portal session is one redirect. We accept that: a code that
// stayed valid after a refusal could be raced for, and the only ways to
// lose one are to leak the URL or to open it twice.
//
// With a trip cookie, a bad, used or expired code goes back to the app's
// root, where the gate admits an existing session or starts a new trip.
// Without one, it shows an error page rather than redirecting: a browser
// that refuses the cookie would otherwise loop through the portal.
func (a *App) handoff(w http.ResponseWriter, r *http.Request) {
	nonce := tripNonce(r)
	setCookie(w, tripCookie, "", -1)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	code := r.URL.Query().Get("code")
	if code == "" || len(code) > 256 {
		http.Redirect(w, r, "/", http.StatusFound)
		return
	}
	// identity audits the redemption (both ways) and records the client
	// on the new app session.
	ctx := identity.WithClient(r.Context(), identity.Client{Source: r.RemoteAddr, UserAgent: r.UserAgent()})
	s, path, err := a.sessions.RedeemBoundHandoff(ctx, code, a.host, nonce)
	if err != nil {
		switch {
		case !errors.Is(err, identity.ErrNotFound) && !errors.Is(err, identity.ErrForbidden) && !errors.Is(err, identity.ErrLocked):
			a.pages.message(w, r, http.StatusServiceUnavailable, "Gatehouse is unavailable",
				"Gatehouse cannot check your sign-in right now. Try again in a moment.", err)
		case nonce == "":
			a.pages.message(w, r, http.StatusForbidden, "Sign-in link not for this browser",
				"This sign-in link was made for another browser, or this browser did not keep Gatehouse's cookie. Open the app again to sign in here.", err)
		default:
			http.Redirect(w, r, "/", http.StatusFound)
		}
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
