package portal

import (
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// ceremonySession returns the portal session for a ceremony endpoint after
// the origin and CSRF checks, or answers with a JSON error and returns nil.
func (p *Portal) ceremonySession(w http.ResponseWriter, r *http.Request) *identity.Session {
	s, err := p.session(r)
	if err != nil {
		p.jsonError(w, r, http.StatusServiceUnavailable, "Gatehouse is unavailable. Try again in a moment.", err)
		return nil
	}
	if s == nil {
		p.jsonError(w, r, http.StatusUnauthorized, "Your sign-in has expired. Reload the page to sign in again.", nil)
		return nil
	}
	if !p.checkPost(w, r, s, true) {
		return nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxJSONBytes)
	return s
}

// ceremonyFailed maps an identity error from a ceremony to a JSON answer.
// Details go to the log; the person gets a short, generic reason.
func (p *Portal) ceremonyFailed(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, identity.ErrRateLimited):
		p.jsonError(w, r, http.StatusTooManyRequests, "Too many attempts. Wait a minute and try again.", err)
	case errors.Is(err, identity.ErrLocked):
		p.jsonError(w, r, http.StatusForbidden, "Your account is locked. Ask your Gatehouse administrators.", err)
	case errors.Is(err, identity.ErrMFARequired):
		p.jsonError(w, r, http.StatusForbidden, "Confirm with a key you already use first.", err)
	case errors.Is(err, identity.ErrNotFound):
		p.jsonError(w, r, http.StatusBadRequest, "This security key request expired or was already used. Try again.", err)
	case errors.Is(err, identity.ErrForbidden), errors.Is(err, identity.ErrClonedKey):
		p.jsonError(w, r, http.StatusForbidden, "Your security key was not accepted.", err)
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			p.jsonError(w, r, http.StatusRequestEntityTooLarge, "The security key's answer is too large.", err)
			return
		}
		p.jsonError(w, r, http.StatusBadRequest, "Your security key's answer could not be verified.", err)
	}
}

// registerBegin returns the options for navigator.credentials.create.
func (p *Portal) registerBegin(w http.ResponseWriter, r *http.Request) {
	s := p.ceremonySession(w, r)
	if s == nil {
		return
	}
	if p.limited(w, r, "register", s.Email, true) {
		return
	}
	opts, err := p.webauthn.BeginRegistration(r.Context(), s, r.URL.Query().Get("invite"))
	if err != nil {
		p.ceremonyFailed(w, r, err)
		return
	}
	jsonReply(w, http.StatusOK, opts)
}

// registerFinish verifies a new key and continues to the return URL.
func (p *Portal) registerFinish(w http.ResponseWriter, r *http.Request) {
	s := p.ceremonySession(w, r)
	if s == nil {
		return
	}
	name := keyName(r.URL.Query().Get("name"))
	ns, err := p.webauthn.FinishRegistration(r.Context(), s, name, r.Body)
	if err != nil {
		p.ceremonyFailed(w, r, err)
		return
	}
	p.ceremonyDone(w, r, ns)
}

// assertBegin returns the options for navigator.credentials.get.
func (p *Portal) assertBegin(w http.ResponseWriter, r *http.Request) {
	s := p.ceremonySession(w, r)
	if s == nil {
		return
	}
	if p.limited(w, r, "assert", s.Email, true) {
		return
	}
	opts, err := p.webauthn.BeginAssertion(r.Context(), s)
	if err != nil {
		p.ceremonyFailed(w, r, err)
		return
	}
	jsonReply(w, http.StatusOK, opts)
}

// assertFinish verifies an assertion and continues to the return URL.
func (p *Portal) assertFinish(w http.ResponseWriter, r *http.Request) {
	s := p.ceremonySession(w, r)
	if s == nil {
		return
	}
	ns, err := p.webauthn.FinishAssertion(r.Context(), s, r.Body)
	if err != nil {
		p.ceremonyFailed(w, r, err)
		return
	}
	p.ceremonyDone(w, r, ns)
}

// ceremonyDone answers a finished ceremony with where the script should go
// next: the return URL, through a handoff code for an app host.
func (p *Portal) ceremonyDone(w http.ResponseWriter, r *http.Request, s *identity.Session) {
	to, err := p.continueTo(r, s, p.tripFrom(r.URL.Query()))
	if err != nil {
		p.jsonError(w, r, http.StatusServiceUnavailable, "Gatehouse is unavailable. Try again in a moment.", err)
		return
	}
	jsonReply(w, http.StatusOK, map[string]string{"redirect": to})
}

// keyName cleans a display name for a key: printable, at most 64 runes,
// "Security key" when empty.
func keyName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > 64 {
		s = string([]rune(s)[:64])
	}
	if s == "" {
		s = "Security key"
	}
	return s
}
