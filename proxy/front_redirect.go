package proxy

import (
	"net/http"
	"strings"
)

// serveHTTPRedirect answers the plain HTTP listener: ACME HTTP-01 challenges,
// and a 308 redirect to HTTPS on the same host for configured hosts only.
// Unknown hosts get 404, so the listener is no open redirector.
func (f *Front) serveHTTPRedirect(w http.ResponseWriter, r *http.Request) {
	if f.acme != nil && f.acme.handleHTTPChallenge(w, r) {
		return
	}
	if r.Method == http.MethodConnect || !strings.HasPrefix(r.RequestURI, "/") {
		frontError(w, http.StatusBadRequest, "bad request")
		return
	}
	rt := f.routes.Load()
	host := canonicalHost(r.Host)
	if !rt.known(host) {
		frontError(w, http.StatusNotFound, "unknown host")
		return
	}
	w.Header().Set("Location", "https://"+host+rt.redirectPort+r.RequestURI)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusPermanentRedirect)
}
