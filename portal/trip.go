package portal

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// tripCookie holds the nonce of a sign-in trip on an app host. The app
// gate sets it when it sends a person to the portal, and the handoff at
// the end of the trip redeems its code only with it, so that a handoff URL
// opened in another browser signs nobody in (login CSRF, issue 12 defect
// 4). The __Host- prefix keeps a sibling host from planting one.
const tripCookie = "__Host-gatehouse-trip"

// tripTTL is how long the trip cookie lives: identity.HandoffNonceTTL,
// long enough for SSO, a first enrolment and a key touch, short enough
// that a stale nonce is soon gone.
const tripTTL = identity.HandoffNonceTTL

// maxTripNonce bounds a trip cookie's value; identity's nonces are 43
// bytes.
const maxTripNonce = 128

// trip is where a sign-in or step-up continues: the checked return URL and
// the binding (identity.HandoffBinding) of the trip nonce of the app host
// that sent the person, "" when none did.
type trip struct{ rd, bind string }

// tripFrom reads a trip from a portal URL's query. The return URL goes
// through safeReturn (a bad one becomes the portal's home); a binding that
// is not 64 lower-case hex digits, or that comes with a return URL on the
// portal itself, is dropped.
func (p *Portal) tripFrom(q url.Values) trip {
	t := trip{rd: p.safeReturn(q.Get("rd"))}
	if b := q.Get("bind"); bindingOK(b) && !strings.HasPrefix(t.rd, "/") {
		t.bind = b
	}
	return t
}

// at returns the portal path with the trip as its query.
func (t trip) at(path string) string {
	rd := t.rd
	if rd == "/" {
		rd = ""
	}
	return tripURL(path, rd, t.bind)
}

// tripURL returns path with rd and bind (each only when set) as its query,
// rd first.
func tripURL(path, rd, bind string) string {
	sep := "?"
	if rd != "" {
		path += sep + "rd=" + url.QueryEscape(rd)
		sep = "&"
	}
	if bind != "" {
		path += sep + "bind=" + bind // bindingOK: hex digits only
	}
	return path
}

// bindingOK reports whether b has the shape of identity.HandoffBinding's
// result: 64 lower-case hex digits.
func bindingOK(b string) bool {
	if len(b) != 64 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if c := b[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// startTrip sends the person to the portal page path (the login or the
// step-up) to come back to this request's URL. It binds the trip to this
// browser: a trip nonce in a host cookie here, its binding in the URL. A
// trip cookie the browser already holds is reused, so that two tabs that
// start trips at once do not invalidate each other's handoff.
func (a *App) startTrip(w http.ResponseWriter, r *http.Request, path string) {
	nonce := tripNonce(r)
	if nonce == "" {
		var err error
		if nonce, err = identity.NewHandoffNonce(); err != nil {
			a.pages.message(w, r, http.StatusServiceUnavailable, "Gatehouse is unavailable",
				"Gatehouse cannot start your sign-in right now. Try again in a moment.", err)
			return
		}
	}
	setCookie(w, tripCookie, nonce, tripTTL)
	http.Redirect(w, r, tripURL(a.portal+path, a.returnURL(r), identity.HandoffBinding(nonce)), http.StatusFound)
}

// tripNonce returns the request's trip cookie, or "" when it has none or
// its value is not a plain token.
func tripNonce(r *http.Request) string {
	c, err := r.Cookie(tripCookie)
	if err != nil || c.Value == "" || len(c.Value) > maxTripNonce {
		return ""
	}
	for i := 0; i < len(c.Value); i++ {
		ch := c.Value[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			return ""
		}
	}
	return c.Value
}
