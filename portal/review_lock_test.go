package portal

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// lock posts the Lock form of recording id with token csrf.
func (rv *rvEnv) lock(c *http.Client, id, csrf, reason, origin string) ptResp {
	rv.t.Helper()
	v := url.Values{"rd": {"/review/s/" + id}, "reason": {reason}}
	if csrf != "" {
		v.Set("csrf", csrf)
	}
	return rv.postForm(c, "https://gate.test/review/s/"+id+"/lock", v, origin)
}

func (rv *rvEnv) locked(email string) bool {
	rv.t.Helper()
	locked, err := rv.locks.Locked(rv.t.Context(), email)
	if err != nil {
		rv.t.Fatal(err)
	}
	return locked
}

func TestReviewLock(t *testing.T) {
	rv := newRVEnv(t)
	ann := rv.client()
	rv.echo(rv.login(ann, newPTKey(), "https://app.test/", "ann@example.com", "eng"))
	c, res := rv.reviewer("rita@example.com", "security")
	csrf := csrfOf(t, res.body)

	if page := rv.get(c, "https://gate.test/review/s/rec-old"); !strings.Contains(page.body, `id="lock-form"`) || !strings.Contains(page.body, `action="/review/s/rec-old/lock"`) {
		t.Errorf("player page has no Lock form")
	}
	for name, r := range map[string]ptResp{
		"no token":     rv.lock(c, "rec-old", "", "x", "https://gate.test"),
		"wrong token":  rv.lock(c, "rec-old", csrf+"x", "x", "https://gate.test"),
		"cross origin": rv.lock(c, "rec-old", csrf, "x", "https://evil.example"),
	} {
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("lock with %s = %d, want 403", name, r.StatusCode)
		}
	}
	if rv.locked("ann@example.com") {
		t.Fatal("a refused request locked")
	}
	// A person who is not a reviewer cannot lock.
	eve := rv.client()
	rv.echo(rv.login(eve, newPTKey(), "https://app.test/", "eve@example.com", "eng"))
	evePage := rv.get(eve, "https://gate.test/")
	if r := rv.lock(eve, "rec-old", csrfOf(t, evePage.body), "x", "https://gate.test"); r.StatusCode != http.StatusForbidden || rv.locked("ann@example.com") {
		t.Errorf("lock by a non-reviewer = %d, locked %v", r.StatusCode, rv.locked("ann@example.com"))
	}
	if r := rv.lock(c, "nope", csrf, "x", "https://gate.test"); r.StatusCode != http.StatusNotFound {
		t.Errorf("lock for an unknown recording = %d, want 404", r.StatusCode)
	}

	res = rv.lock(c, "rec-old", csrf, "INC-42 shadow read", "https://gate.test")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.body, "ann@example.com is locked out") {
		t.Fatalf("lock = %d %q", res.StatusCode, res.body)
	}
	if !rv.locked("ann@example.com") {
		t.Fatal("ann is not locked")
	}
	ev := rv.audit.inner.find(identity.EventLock, "allow")
	if len(ev) != 1 || ev[0].Actor != "rita@example.com" || ev[0].Resource != "user:ann@example.com" ||
		!strings.Contains(ev[0].Reason, "INC-42 shadow read") || !strings.Contains(ev[0].Reason, "rec-old") {
		t.Errorf("lock events = %+v", ev)
	}
	// Ann's sessions are revoked: the app sends her to sign in again.
	if r := rv.get(ann, "https://app.test/"); r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), "https://gate.test/auth/login") {
		t.Errorf("ann's app request after the lock = %d to %q, want the login", r.StatusCode, r.Header.Get("Location"))
	}

	// A stale assertion confirms with the key first, as Terminate does.
	rv.clock.Advance(reviewFreshness + time.Minute)
	res = rv.lock(c, "rec-mid", csrf, "x", "https://gate.test")
	if want := "/auth/stepup?rd=" + url.QueryEscape("/review/s/rec-mid"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
		t.Errorf("lock with a stale assertion = %d to %q, want %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	if rv.locked("bob@example.com") {
		t.Error("locked with a stale assertion")
	}
}

func TestReviewLockOff(t *testing.T) {
	rv := newRVEnv(t)
	p, err := NewPortal(PortalConfig{
		Config: rv.cfg, OIDC: rv.oidc, Sessions: rv.sessions, WebAuthn: rv.webauthn, Approvals: rv.approvals, Limiter: rv.limiter,
		Codec: rv.codec, Audit: rv.audit, Logger: rv.portal.logger, Now: rv.clock.Now,
		Review: ReviewConfig{Recordings: rv.rec},
	})
	if err != nil {
		t.Fatal(err)
	}
	rv.portal = p
	c, res := rv.reviewer("rita@example.com", "security")
	if page := rv.get(c, "https://gate.test/review/s/rec-old"); strings.Contains(page.body, `id="lock-form"`) {
		t.Error("player page offers Lock without ReviewConfig.Lock")
	}
	if r := rv.lock(c, "rec-old", csrfOf(t, res.body), "x", "https://gate.test"); r.StatusCode != http.StatusNotFound || rv.locked("ann@example.com") {
		t.Errorf("lock without ReviewConfig.Lock = %d", r.StatusCode)
	}
}
