package portal

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
)

// csrfHeader carries the CSRF token on fetch requests; forms send the field
// csrfField instead.
const (
	csrfHeader = "X-CSRF-Token"
	csrfField  = "csrf"
)

// csrfToken returns the CSRF token bound to a session: an HMAC of a fixed
// label keyed with the secret session ID. It needs no server-side state and
// is the same on every replica; a page from another origin cannot compute it
// because the session ID lives only in an HttpOnly cookie and the store.
func csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, []byte(sessionID))
	m.Write([]byte("gatehouse csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfValid reports whether got is the CSRF token for sessionID. An empty
// session ID or token is never valid.
func csrfValid(sessionID, got string) bool {
	if sessionID == "" || got == "" || len(got) > 128 {
		return false
	}
	want := csrfToken(sessionID)
	return subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// csrfFrom returns the token a request carries: the header for fetch
// requests, else the form field. It never reads a body larger than
// maxFormBytes.
func csrfFrom(r *http.Request) string {
	if t := r.Header.Get(csrfHeader); t != "" {
		return t
	}
	ct := r.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return r.PostFormValue(csrfField)
	}
	return ""
}

// sameOrigin reports whether a state-changing request comes from a page of
// origin (scheme://host[:port], lower case). Browsers send Origin on every
// POST, but as "null" for a form on a page whose referrer policy is
// no-referrer (Gatehouse's own); then, or when Origin is absent,
// Sec-Fetch-Site (which pages cannot set) must say same-origin. A request
// with neither is refused: fail closed.
func sameOrigin(r *http.Request, origin string) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		return strings.EqualFold(o, origin)
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

// newRequestID returns a random identifier for one request, shown on error
// and denied pages and recorded in the audit log, so a person can quote it
// and an admin can find the decision.
func newRequestID() string {
	var b [9]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms (Go 1.24+).
		return "unavailable"
	}
	return hex.EncodeToString(b[:])
}
