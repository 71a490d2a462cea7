package assertion

import (
	"net/http"
	"strconv"
)

// JWKSPath is where the portal serves the assertion signing keys.
const JWKSPath = "/.well-known/jwks.json"

// JWKS returns a handler serving the public keys of the signing ring as a
// JSON Web Key Set (RFC 7517), for JWKSPath on the portal host. It answers
// GET and HEAD only. Upstreams may cache the set for five minutes; a new
// key is published an hour before it signs anything.
func (a *Signer) JWKS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body := a.currentRing(a.now()).jwks
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age="+strconv.Itoa(jwksMaxAge))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	})
}
