package portal

import (
	"encoding/base64"
	"errors"
	"net/http"
	"sort"

	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/web"
)

// home is the portal's front page: the sign-in interstitial without a
// session, else the person's apps, keys and sessions.
func (p *Portal) home(w http.ResponseWriter, r *http.Request) {
	s, err := p.session(r)
	if err != nil {
		p.unavailable(w, r, err)
		return
	}
	if s == nil {
		notice := ""
		if r.URL.Query().Get("signed_out") != "" {
			notice = "You are signed out."
		}
		p.render(w, r, http.StatusOK, "login", web.Page{Title: "Sign in", Body: web.Login{LoginURL: "/auth/login", Notice: notice}})
		return
	}
	if s.Pending() {
		http.Redirect(w, r, "/auth/verify", http.StatusFound)
		return
	}
	ctx := r.Context()
	creds, err := p.webauthn.Credentials(ctx, s.Email)
	if err != nil {
		p.unavailable(w, r, err)
		return
	}
	sessions, err := p.sessions.List(ctx, s.Email)
	if err != nil {
		p.unavailable(w, r, err)
		return
	}
	body := web.Home{Apps: p.apps(s.Subject())}
	for _, c := range creds {
		body.Keys = append(body.Keys, web.Key{ID: base64.RawURLEncoding.EncodeToString(c.ID), Name: c.Name, Created: c.Created, LastUsed: c.LastUsed})
	}
	for _, o := range sessions {
		body.Sessions = append(body.Sessions, web.Session{ID: o.Handle, Created: o.Created, LastSeen: o.LastSeen,
			Source: o.Source, Agent: truncate(o.UserAgent, 160), Current: o.Handle == s.Handle})
	}
	p.render(w, r, http.StatusOK, "home", p.page(s, "Your apps", body))
}

// apps lists the routes who may open (now, or after a step-up), by name.
func (p *Portal) apps(who authz.Subject) []web.App {
	now := p.now()
	var out []web.App
	for i := range p.cfg.Routes {
		rt := &p.cfg.Routes[i]
		d := authz.DecideRoute(who, rt, p.cfg.MFA.MaxAge.D(), "/", now)
		if d.Allow || d.NeedMFA {
			out = append(out, web.App{Name: rt.Name, URL: "https://" + p.hostPort(rt.Host) + "/"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// formSession returns the full session of a form POST that passed the
// origin and CSRF checks, or answers and returns nil.
func (p *Portal) formSession(w http.ResponseWriter, r *http.Request) *identity.Session {
	s, err := p.session(r)
	if err != nil {
		p.unavailable(w, r, err)
		return nil
	}
	if s == nil {
		http.Redirect(w, r, "/auth/login", http.StatusSeeOther)
		return nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if !p.checkPost(w, r, s, false) {
		return nil
	}
	if s.Pending() {
		http.Redirect(w, r, "/auth/verify", http.StatusSeeOther)
		return nil
	}
	return s
}

// keysAdd shows the page that asserts with an existing key and then
// enrols another.
func (p *Portal) keysAdd(w http.ResponseWriter, r *http.Request) {
	s := p.requireSession(w, r, "/keys/add", true)
	if s == nil {
		return
	}
	p.render(w, r, http.StatusOK, "enroll", p.ceremonyPage(s, "Add a security key", web.ModeAdd, trip{rd: "/"}, ""))
}

// credentialID decodes a key ID from a form.
func credentialID(v string) ([]byte, bool) {
	if v == "" || len(v) > 1400 {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	return b, err == nil && len(b) > 0
}

func (p *Portal) keysRename(w http.ResponseWriter, r *http.Request) {
	s := p.formSession(w, r)
	if s == nil {
		return
	}
	id, ok := credentialID(r.PostFormValue("id"))
	if !ok {
		p.message(w, r, http.StatusBadRequest, "Unknown key", "That key does not exist.", nil)
		return
	}
	if err := p.webauthn.RenameCredential(r.Context(), s, id, keyName(r.PostFormValue("name"))); err != nil {
		p.keyFailed(w, r, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (p *Portal) keysRemove(w http.ResponseWriter, r *http.Request) {
	s := p.formSession(w, r)
	if s == nil {
		return
	}
	id, ok := credentialID(r.PostFormValue("id"))
	if !ok {
		p.message(w, r, http.StatusBadRequest, "Unknown key", "That key does not exist.", nil)
		return
	}
	if err := p.webauthn.RemoveCredential(r.Context(), s, id); err != nil {
		p.keyFailed(w, r, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// keyFailed answers a failed key change.
func (p *Portal) keyFailed(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, identity.ErrMFARequired):
		// Removing a key needs a recent assertion: get one, then the person
		// clicks again on the refreshed page.
		http.Redirect(w, r, withRD("/auth/stepup", "/"), http.StatusSeeOther)
	case errors.Is(err, identity.ErrLastKey):
		p.message(w, r, http.StatusConflict, "Cannot remove your only key", "Add another security key first.", err)
	case errors.Is(err, identity.ErrNotFound):
		p.message(w, r, http.StatusNotFound, "Unknown key", "That key does not exist.", err)
	default:
		p.unavailable(w, r, err)
	}
}

// sessionsSignOut ends one of the person's own sessions.
func (p *Portal) sessionsSignOut(w http.ResponseWriter, r *http.Request) {
	s := p.formSession(w, r)
	if s == nil {
		return
	}
	handle := r.PostFormValue("id")
	list, err := p.sessions.List(r.Context(), s.Email)
	if err != nil {
		p.unavailable(w, r, err)
		return
	}
	found := false
	for _, o := range list {
		if handle != "" && o.Handle == handle {
			found = true
			break
		}
	}
	if !found {
		// Not one of this person's sessions: never revoke someone else's.
		p.message(w, r, http.StatusNotFound, "Unknown session", "That session has already ended.", nil)
		return
	}
	if err := p.sessions.Revoke(r.Context(), handle); err != nil {
		p.unavailable(w, r, err)
		return
	}
	p.revoked(handle, "")
	if handle == s.Handle {
		setCookie(w, SessionCookie, "", -1)
		http.Redirect(w, r, "/?signed_out=1", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// sessionsSignOutAll ends every session of the person, this one included.
func (p *Portal) sessionsSignOutAll(w http.ResponseWriter, r *http.Request) {
	s := p.formSession(w, r)
	if s == nil {
		return
	}
	if _, err := p.sessions.RevokeAll(r.Context(), s.Email); err != nil {
		p.unavailable(w, r, err)
		return
	}
	p.revoked("", s.Email)
	setCookie(w, SessionCookie, "", -1)
	http.Redirect(w, r, "/?signed_out=1", http.StatusSeeOther)
}
