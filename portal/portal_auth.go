package portal

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/web"
)

// unavailable answers when a store or IdP failure keeps Gatehouse from
// deciding: fail closed with a 503.
func (p *Portal) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	p.message(w, r, http.StatusServiceUnavailable, "Gatehouse is unavailable",
		"Gatehouse cannot check your sign-in right now. Try again in a moment.", err)
}

// idpUnavailable answers a sign-in that needs the IdP while it does not
// answer (identity.ErrIdPUnavailable): a 503 page, never a redirect, so the
// browser does not loop. Sessions that exist keep working meanwhile.
func (p *Portal) idpUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Retry-After", "60")
	p.message(w, r, http.StatusServiceUnavailable, "Sign-in is unavailable",
		"The identity provider is not answering; try again in a minute.", err)
}

// login starts a sign-in for the trip in the query (the return URL rd and
// the app host's binding). A person who already has a full portal session
// goes straight on (with a handoff code for an app host); one whose
// session still lacks a security key goes to that step; anyone else goes
// to the IdP, which gives the trip back to the callback.
func (p *Portal) login(w http.ResponseWriter, r *http.Request) {
	t := p.tripFrom(r.URL.Query())
	s, err := p.session(r)
	if err != nil {
		p.unavailable(w, r, err)
		return
	}
	if s != nil {
		if s.Pending() {
			http.Redirect(w, r, t.at("/auth/verify"), http.StatusFound)
			return
		}
		p.proceed(w, r, s, t)
		return
	}
	if p.limited(w, r, "login", "", false) {
		return
	}
	// The flow keeps one return URL: a bound trip travels as the portal
	// URL of its next step, which the callback goes to directly.
	returnTo := t.rd
	if t.bind != "" {
		returnTo = t.at("/auth/verify")
	}
	authURL, flow, err := p.oidc.BeginLogin(r.Context(), returnTo)
	if errors.Is(err, identity.ErrIdPUnavailable) {
		p.idpUnavailable(w, r, err)
		return
	}
	if err != nil {
		p.unavailable(w, r, err)
		return
	}
	setCookie(w, flowCookie, flow, identity.FlowTTL)
	http.Redirect(w, r, authURL, http.StatusFound)
}

// proceed sends a full session on to the trip's return URL.
func (p *Portal) proceed(w http.ResponseWriter, r *http.Request, s *identity.Session, t trip) {
	to, err := p.continueTo(r, s, t)
	if err != nil {
		switch {
		case errors.Is(err, identity.ErrMFARequired):
			http.Redirect(w, r, t.at("/auth/verify"), http.StatusFound)
		case errors.Is(err, identity.ErrLocked):
			p.message(w, r, http.StatusForbidden, "Account locked",
				"Your account is locked. Ask your Gatehouse administrators.", err)
		case errors.Is(err, identity.ErrNotFound):
			// The session ended between its lookup and the handoff.
			http.Redirect(w, r, t.at("/auth/login"), http.StatusFound)
		default:
			p.unavailable(w, r, err)
		}
		return
	}
	http.Redirect(w, r, to, http.StatusFound)
}

// callback finishes the OIDC login, starts a pending portal session and
// sends the person to enrol or assert a security key.
func (p *Portal) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	flow := ""
	if c, err := r.Cookie(flowCookie); err == nil {
		flow = c.Value
	}
	setCookie(w, flowCookie, "", -1)
	if e := q.Get("error"); e != "" {
		// The IdP refused or the person cancelled; identity has nothing to
		// verify, so the portal records it.
		p.logAudit(r, audit.Event{Type: "sso.login", Decision: audit.Deny, Source: r.RemoteAddr,
			Reason: "identity provider returned error " + strconv.Quote(truncate(e, 64))})
		p.message(w, r, http.StatusForbidden, "Sign-in was not completed",
			"Your identity provider did not sign you in. Start again from the app you wanted to open.", errors.New("idp error: "+truncate(e, 64)))
		return
	}
	if p.limited(w, r, "login", "", false) {
		return
	}
	l, err := p.oidc.FinishLogin(r.Context(), q.Get("state"), q.Get("code"), flow)
	if errors.Is(err, identity.ErrIdPUnavailable) {
		p.idpUnavailable(w, r, err)
		return
	}
	if err != nil {
		status := http.StatusForbidden
		if !errors.Is(err, identity.ErrForbidden) && !errors.Is(err, identity.ErrNotFound) {
			status = http.StatusBadGateway
		}
		p.message(w, r, status, "Sign-in failed",
			"Gatehouse could not complete your sign-in. Start again from the app you wanted to open.", err)
		return
	}
	s, err := p.sessions.Start(r.Context(), l, p.host)
	if err != nil {
		if errors.Is(err, identity.ErrLocked) {
			p.message(w, r, http.StatusForbidden, "Account locked",
				"Your account is locked. Ask your Gatehouse administrators.", err)
			return
		}
		p.unavailable(w, r, err)
		return
	}
	value, err := p.codec.Seal(SessionCookie, p.host, s.ID)
	if err != nil {
		p.unavailable(w, r, err)
		return
	}
	setCookie(w, SessionCookie, value, 0)
	rd := p.safeReturn(l.ReturnTo)
	if strings.HasPrefix(rd, "/enroll/") || strings.HasPrefix(rd, "/enroll?") || strings.HasPrefix(rd, "/auth/verify?") {
		http.Redirect(w, r, rd, http.StatusFound)
		return
	}
	http.Redirect(w, r, withRD("/auth/verify", rd), http.StatusFound)
}

// verify shows the security key step of a sign-in: an assertion if the
// person has a key, else an enrolment (open mode) or a pointer to the
// invite link (invite mode). A full session goes straight on.
func (p *Portal) verify(w http.ResponseWriter, r *http.Request) {
	t := p.tripFrom(r.URL.Query())
	s := p.requireSession(w, r, t.at("/auth/verify"), false)
	if s == nil {
		return
	}
	if !s.Pending() {
		p.proceed(w, r, s, t)
		return
	}
	has, err := p.webauthn.HasCredentials(r.Context(), s.Email)
	if err != nil {
		p.unavailable(w, r, err)
		return
	}
	if has {
		p.render(w, r, http.StatusOK, "assert", p.ceremonyPage(s, "Use your security key", web.ModeAssert, t, ""))
		return
	}
	if p.cfg.WebAuthn.Enrollment == config.EnrollmentInvite {
		p.message(w, r, http.StatusForbidden, "Enrolment link needed",
			"You have no security key yet. Ask your Gatehouse administrators for an enrolment link.", nil)
		return
	}
	p.render(w, r, http.StatusOK, "enroll", p.ceremonyPage(s, "Set up your security key", web.ModeEnroll, t, ""))
}

// stepUp asks a signed-in person for a fresh assertion, then continues to
// trip's return URL. Routes whose mfa_max_age ran out send people here.
func (p *Portal) stepUp(w http.ResponseWriter, r *http.Request) {
	t := p.tripFrom(r.URL.Query())
	s := p.requireSession(w, r, t.at("/auth/stepup"), false)
	if s == nil {
		return
	}
	if s.Pending() {
		http.Redirect(w, r, t.at("/auth/verify"), http.StatusFound)
		return
	}
	pg := p.ceremonyPage(s, "Confirm it is you", web.ModeStepUp, t, "")
	c := pg.Body.(web.Ceremony)
	c.Resource = p.routeName(t.rd)
	pg.Body = c
	p.render(w, r, http.StatusOK, "assert", pg)
}

// enrollInvite is the target of `gatehouse enroll-link`: the first
// enrolment with a one-time invite token (PUBLIC_URL/enroll/TOKEN or
// PUBLIC_URL/enroll?invite=TOKEN). The token is checked by identity when
// the ceremony begins and consumed when it finishes.
func (p *Portal) enrollInvite(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if token == "" {
		token = r.URL.Query().Get("invite")
	}
	if token == "" || len(token) > 256 {
		p.message(w, r, http.StatusNotFound, "Invalid enrolment link", "This enrolment link is incomplete.", nil)
		return
	}
	here := "/enroll/" + url.PathEscape(token)
	s := p.requireSession(w, r, here, false)
	if s == nil {
		return
	}
	has, err := p.webauthn.HasCredentials(r.Context(), s.Email)
	if err != nil {
		p.unavailable(w, r, err)
		return
	}
	if has {
		p.message(w, r, http.StatusOK, "You already have a security key",
			"Sign in with it; you can add more keys on your Gatehouse page.", nil)
		return
	}
	p.render(w, r, http.StatusOK, "enroll", p.ceremonyPage(s, "Set up your security key", web.ModeEnroll, trip{rd: "/"}, token))
}

// requireSession returns the request's portal session. Without one it
// redirects to the login with here as the return URL (for GET pages) and
// returns nil; with full set it also sends a pending session to verify.
func (p *Portal) requireSession(w http.ResponseWriter, r *http.Request, here string, full bool) *identity.Session {
	s, err := p.session(r)
	if err != nil {
		p.unavailable(w, r, err)
		return nil
	}
	if s == nil {
		http.Redirect(w, r, withRD("/auth/login", here), http.StatusFound)
		return nil
	}
	if full && s.Pending() {
		http.Redirect(w, r, withRD("/auth/verify", here), http.StatusFound)
		return nil
	}
	return s
}

// ceremonyPage builds an enrol or assert page whose finish endpoints carry
// the trip (and the invite token, if any).
func (p *Portal) ceremonyPage(s *identity.Session, title, mode string, t trip, invite string) web.Page {
	finishQ := t.at("")
	beginQ := ""
	if invite != "" {
		beginQ = "?" + url.Values{"invite": {invite}}.Encode()
	}
	c := web.Ceremony{
		Mode:           mode,
		AssertBegin:    "/auth/webauthn/assert/begin",
		AssertFinish:   "/auth/webauthn/assert/finish" + finishQ,
		RegisterBegin:  "/auth/webauthn/register/begin" + beginQ,
		RegisterFinish: "/auth/webauthn/register/finish" + finishQ,
	}
	pg := p.page(s, title, c)
	pg.Script = true
	return pg
}

// logout ends the portal session and every app session made from it.
func (p *Portal) logout(w http.ResponseWriter, r *http.Request) {
	s, err := p.session(r)
	if err != nil {
		p.unavailable(w, r, err)
		return
	}
	if s == nil {
		setCookie(w, SessionCookie, "", -1)
		http.Redirect(w, r, "/?signed_out=1", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if !p.checkPost(w, r, s, false) {
		return
	}
	if err := p.sessions.Revoke(r.Context(), s.Handle); err != nil {
		p.unavailable(w, r, err)
		return
	}
	p.revoked(s.Handle, "")
	setCookie(w, SessionCookie, "", -1)
	http.Redirect(w, r, "/?signed_out=1", http.StatusSeeOther)
}

// truncate shortens s to at most n bytes for logs.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
