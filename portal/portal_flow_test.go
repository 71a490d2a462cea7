package portal

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/audit"
)

func TestFlowFirstLoginEnrolsAndReachesApp(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	key := newPTKey()
	start := "https://app.test/dash/x%2Fy?a=1&b=two%20words"
	res := e.signIn(c, start, "ann@example.com", "eng")
	page := e.follow(c, ptAbs(res.Request.URL, res.Header.Get("Location")))
	if got := dataAttr(page.body, "mode"); got != "enroll" {
		t.Fatalf("first login shows mode %q, want enroll", got)
	}
	to := e.redirectOf(e.ceremony(c, page, key))
	if !strings.HasPrefix(to, "https://app.test/.gatehouse/handoff?code=") {
		t.Fatalf("after enrolment the script goes to %q, want the app's handoff", to)
	}
	// The handoff sets the app's own cookie and goes to the stored path.
	res = e.get(c, to)
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/dash/x%2Fy?a=1&b=two%20words" {
		t.Fatalf("handoff = %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	var appCookie string
	for _, v := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, SessionCookie+"=") {
			appCookie = v
		}
	}
	for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age="} {
		if !strings.Contains(appCookie, attr) {
			t.Errorf("app Set-Cookie %q lacks %s", appCookie, attr)
		}
	}
	if strings.Contains(strings.ToLower(appCookie), "domain=") {
		t.Errorf("app Set-Cookie %q has a Domain", appCookie)
	}
	// The app is reached with path and query intact; the client's own
	// identity headers and Gatehouse's cookie never reach the upstream.
	res = e.do(c, http.MethodGet, start, nil, map[string]string{
		"X-Gatehouse-User": "mallory@example.com", "X-Gatehouse-Email": "mallory@example.com",
		"X-Gatehouse-Groups": "admins", "X-Gatehouse-Jwt-Assertion": "forged",
	})
	echo := e.echo(res)
	if echo.URI != "/dash/x%2Fy?a=1&b=two%20words" {
		t.Errorf("upstream saw URI %q", echo.URI)
	}
	want := map[string][]string{
		"X-Gatehouse-User":   {"ann@example.com"},
		"X-Gatehouse-Email":  {"ann@example.com"},
		"X-Gatehouse-Groups": {"eng"},
	}
	got := map[string][]string{}
	for k := range want {
		got[k] = echo.Headers[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("identity headers at the upstream (-want +got):\n%s", diff)
	}
	if a := echo.Headers["X-Gatehouse-Jwt-Assertion"]; len(a) != 1 || a[0] == "forged" || strings.Count(a[0], ".") != 2 {
		t.Errorf("assertion header at the upstream = %q, want one signed JWT", a)
	}
	for _, ck := range echo.Headers["Cookie"] {
		if strings.Contains(ck, "gatehouse") {
			t.Errorf("upstream received Gatehouse's cookie: %q", ck)
		}
	}
	// The handoff code is single use: replaying it in another browser
	// is refused and sets no cookie.
	c2 := e.client()
	res = e.get(c2, to)
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("replayed handoff = %d to %q, want 403", res.StatusCode, res.Header.Get("Location"))
	}
	if e.cookie(c2, "app.test") != "" {
		t.Errorf("replayed handoff set a cookie")
	}
	if len(e.audit.find("webauthn.enroll", audit.Allow)) != 1 {
		t.Errorf("enrolment not audited once")
	}
}

func TestFlowSecondLoginAsserts(t *testing.T) {
	e := newPTEnv(t)
	key := newPTKey()
	e.echo(e.login(e.client(), key, "https://app.test/", "ann@example.com", "eng"))

	// A new browser (no cookies), same key: an assertion, not an enrolment.
	c := e.client()
	res := e.signIn(c, "https://app.test/again?x=1", "ann@example.com", "eng")
	page := e.follow(c, ptAbs(res.Request.URL, res.Header.Get("Location")))
	if got := dataAttr(page.body, "mode"); got != "assert" {
		t.Fatalf("second login shows mode %q, want assert", got)
	}
	fin := e.ceremony(c, page, key)
	echo := e.echo(e.follow(c, e.redirectOf(fin)))
	if echo.URI != "/again?x=1" {
		t.Errorf("upstream saw %q, want /again?x=1", echo.URI)
	}
	// Replaying the same assertion fails: its ceremony was consumed.
	res = e.postJSON(c, "/auth/webauthn/assert/finish", dataAttr(page.body, "csrf"), e.lastAssertion)
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("replayed assertion = %d %s, want 400", res.StatusCode, res.body)
	}
	// An assertion from another key (never enrolled) is refused.
	c3 := e.client()
	res = e.signIn(c3, "https://app.test/", "ann@example.com", "eng")
	page = e.follow(c3, ptAbs(res.Request.URL, res.Header.Get("Location")))
	if fin := e.ceremony(c3, page, newPTKey()); fin.StatusCode == http.StatusOK {
		t.Errorf("assertion with an unknown key = 200, want a refusal")
	}
	if e.cookie(c3, "app.test") != "" {
		t.Errorf("unknown key got an app cookie")
	}
}

func TestFlowClonedKeyRefused(t *testing.T) {
	e := newPTEnv(t)
	key := newPTKey()
	e.echo(e.login(e.client(), key, "https://app.test/", "ann@example.com", "eng"))
	e.echo(e.login(e.client(), key, "https://app.test/", "ann@example.com", "eng"))
	// A clone of the key still has an old counter.
	clone := *key
	clone.cred.Counter = 0
	c := e.client()
	res := e.signIn(c, "https://app.test/", "ann@example.com", "eng")
	page := e.follow(c, ptAbs(res.Request.URL, res.Header.Get("Location")))
	fin := e.ceremony(c, page, &clone)
	if fin.StatusCode != http.StatusForbidden {
		t.Errorf("cloned key assertion = %d %s, want 403", fin.StatusCode, fin.body)
	}
	if len(e.audit.find("webauthn.cloned_key", audit.Deny)) != 1 {
		t.Errorf("cloned key not audited")
	}
}

func TestFlowDeniedRoute(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	e.echo(e.login(c, newPTKey(), "https://app.test/", "ann@example.com", "eng"))
	res := e.follow(c, "https://other.test/ops?x=1")
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("other.test for a non-member = %d, want 403", res.StatusCode)
	}
	rid := res.Header.Get("X-Request-Id")
	for _, w := range []string{"route:other", "members of the group security", "root@example.com", rid, "route other: group ops required"} {
		if w == "" || !strings.Contains(res.body, w) {
			t.Errorf("denied page lacks %q", w)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("denied page CSP = %q", csp)
	}
	ev := e.audit.find("http.access", audit.Deny)
	if len(ev) != 1 || ev[0].Details["request_id"] != rid || ev[0].Actor != "ann@example.com" || ev[0].Reason == "" || ev[0].Resource != "route:other" {
		t.Errorf("denial audit = %+v, want one event with request ID %s", ev, rid)
	}
	if n := e.upHits.get(); n != 1 {
		t.Errorf("upstream saw %d requests, want 1 (the allowed one)", n)
	}
	// The portal lists only the apps this person may open.
	home := e.get(c, "https://gate.test/")
	if !strings.Contains(home.body, `href="https://app.test/"`) || !strings.Contains(home.body, `href="https://fresh.test/"`) || strings.Contains(home.body, "other.test") {
		t.Errorf("home lists the wrong apps:\n%s", home.body)
	}
}

func TestFlowStepUp(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	key := newPTKey()
	e.echo(e.login(c, key, "https://fresh.test/report?week=3", "ann@example.com", "eng"))
	e.clock.Advance(2 * time.Minute) // fresh.test wants an assertion < 1m old
	res := e.get(c, "https://fresh.test/report?week=4")
	want := "https://gate.test/auth/stepup?rd=" + url.QueryEscape("https://fresh.test/report?week=4") + "&bind=" + e.tripBinding(c, "fresh.test")
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != want {
		t.Fatalf("stale MFA = %d to %q, want 302 to %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	// app.test (12h) still works without a step-up.
	e.echo(e.follow(c, "https://app.test/"))
	page := e.follow(c, want)
	if got := dataAttr(page.body, "mode"); got != "stepup" || !strings.Contains(page.body, "fresh") {
		t.Fatalf("step-up page mode %q", got)
	}
	echo := e.echo(e.follow(c, e.redirectOf(e.ceremony(c, page, key))))
	if echo.URI != "/report?week=4" {
		t.Errorf("after step-up the upstream saw %q, want /report?week=4", echo.URI)
	}
}

func TestFlowSignOutEndsAppSessions(t *testing.T) {
	tests := []struct {
		name string
		ttl  time.Duration // app session cache
		path string        // the sign-out
		wait time.Duration // clock advance before replaying
	}{
		{"no cache", -1, "/auth/logout", 0},
		// A long cache shows that the portal's sign-out reaches this
		// replica's gates at once, not after the TTL.
		{"long cache, sign out", time.Hour, "/auth/logout", 0},
		{"long cache, everywhere", time.Hour, "/sessions/signout-all", 0},
		// The production TTL bounds a revocation made elsewhere.
		{"default cache, revoked in the store", DefaultAppCacheTTL, "", DefaultAppCacheTTL + 100*time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newPTEnvWith(t, ptOptions{cacheTTL: tt.ttl})
			c := e.client()
			e.echo(e.login(c, newPTKey(), "https://app.test/", "ann@example.com", "eng"))
			appCookie := e.cookie(c, "app.test")
			e.echo(e.get(c, "https://app.test/cached")) // fills the cache
			sid := e.sessionID(c)
			if tt.path != "" {
				res := e.postForm(c, "https://gate.test"+tt.path, url.Values{"csrf": {csrfToken(sid)}}, "https://gate.test")
				if res.StatusCode != http.StatusSeeOther {
					t.Fatalf("sign-out = %d", res.StatusCode)
				}
			} else {
				// As another replica or `gatehouse lock` would: only the store.
				if _, err := e.sessions.RevokeAll(t.Context(), "ann@example.com"); err != nil {
					t.Fatal(err)
				}
			}
			e.clock.Advance(tt.wait) // the gates' cache reads the injected clock
			// Replay the old app cookie from another client.
			replay := e.client()
			res := e.do(replay, http.MethodGet, "https://app.test/secret", nil, map[string]string{"Cookie": SessionCookie + "=" + appCookie})
			if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "https://gate.test/auth/login") {
				t.Errorf("old app cookie after sign-out = %d to %q, want the login", res.StatusCode, res.Header.Get("Location"))
			}
		})
	}
}

func TestFlowSessionsPage(t *testing.T) {
	e := newPTEnv(t)
	key := newPTKey()
	a, b := e.client(), e.client()
	e.echo(e.login(a, key, "https://app.test/", "ann@example.com", "eng"))
	e.echo(e.login(b, key, "https://app.test/", "ann@example.com", "eng"))
	bob := e.client()
	e.echo(e.login(bob, newPTKey(), "https://app.test/", "bob@example.com", "eng"))

	list, err := e.sessions.List(t.Context(), "ann@example.com")
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %d sessions, %v; want 2", len(list), err)
	}
	bobs, err := e.sessions.List(t.Context(), "bob@example.com")
	if err != nil || len(bobs) != 1 {
		t.Fatalf("List(bob) = %v, %v", bobs, err)
	}
	home := e.get(a, "https://gate.test/")
	if strings.Count(home.body, `action="/sessions/signout"`) != 2 || !strings.Contains(home.body, "(this one)") {
		t.Errorf("home does not list both sessions")
	}
	csrf := csrfToken(e.sessionID(a))
	// Ann cannot end Bob's session.
	res := e.postForm(a, "https://gate.test/sessions/signout", url.Values{"csrf": {csrf}, "id": {bobs[0].Handle}}, "https://gate.test")
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("signing out another person's session = %d, want 404", res.StatusCode)
	}
	e.echo(e.follow(bob, "https://app.test/"))
	// Ann ends her other session: b is signed out, a is not.
	bSID := e.sessionID(b)
	var bHandle string
	for _, s := range list {
		if s2, err := e.sessions.Lookup(t.Context(), bSID, "gate.test"); err == nil && s2.Handle == s.Handle {
			bHandle = s.Handle
		}
	}
	res = e.postForm(a, "https://gate.test/sessions/signout", url.Values{"csrf": {csrf}, "id": {bHandle}}, "https://gate.test")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Errorf("signing out the other session = %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res := e.get(b, "https://app.test/"); res.StatusCode != http.StatusFound {
		t.Errorf("signed-out browser still reaches the app: %d", res.StatusCode)
	}
	e.echo(e.follow(a, "https://app.test/"))
	// Sign out everywhere.
	res = e.postForm(a, "https://gate.test/sessions/signout-all", url.Values{"csrf": {csrf}}, "https://gate.test")
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("signout-all = %d", res.StatusCode)
	}
	if res := e.get(a, "https://app.test/"); res.StatusCode != http.StatusFound {
		t.Errorf("after signout-all the app answers %d, want a redirect", res.StatusCode)
	}
	e.echo(e.follow(bob, "https://app.test/"))
}

func TestFlowKeys(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	first := newPTKey()
	e.echo(e.login(c, first, "https://app.test/", "ann@example.com", "eng"))
	csrf := csrfToken(e.sessionID(c))
	creds, err := e.webauthn.Credentials(t.Context(), "ann@example.com")
	if err != nil || len(creds) != 1 {
		t.Fatalf("Credentials = %d, %v", len(creds), err)
	}
	firstID := credID(creds[0].ID)
	// The last key cannot be removed.
	res := e.postForm(c, "https://gate.test/keys/remove", url.Values{"csrf": {csrf}, "id": {firstID}}, "https://gate.test")
	if res.StatusCode != http.StatusConflict {
		t.Errorf("removing the only key = %d, want 409", res.StatusCode)
	}
	// Adding a key needs an assertion with the first, then enrols the second.
	second := newPTKey()
	page := e.get(c, "https://gate.test/keys/add")
	if dataAttr(page.body, "mode") != "add" {
		t.Fatalf("keys/add page mode %q", dataAttr(page.body, "mode"))
	}
	csrfPage := dataAttr(page.body, "csrf")
	// Enrolling without the assertion first is refused once the enrolment
	// window after sign-in has passed.
	e.clock.Advance(10 * time.Minute)
	res = e.postJSON(c, dataAttr(page.body, "register-begin"), csrfPage, `{}`)
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("adding a key without a fresh assertion = %d %s, want 403", res.StatusCode, res.body)
	}
	// The add ceremony asserts with first (any key the person has) and
	// registers second.
	addKey := &ptKey{rp: first.rp, auth: first.auth, cred: first.cred}
	fin := e.assertWith(c, addKey, csrfPage, dataAttr(page.body, "assert-begin"), dataAttr(page.body, "assert-finish"))
	if fin.StatusCode != http.StatusOK {
		t.Fatalf("assertion before adding = %d", fin.StatusCode)
	}
	first.cred.Counter = addKey.cred.Counter
	if reg := e.register(c, second, csrfPage, dataAttr(page.body, "register-begin"), dataAttr(page.body, "register-finish"), "Backup <key>"); reg.StatusCode != http.StatusOK {
		t.Fatalf("registering the second key = %d %s", reg.StatusCode, reg.body)
	}
	home := e.get(c, "https://gate.test/")
	if !strings.Contains(home.body, "Backup &lt;key&gt;") || strings.Count(home.body, `action="/keys/remove"`) != 2 {
		t.Errorf("home does not show both keys:\n%s", home.body)
	}
	// Rename, then remove the first key; the second still signs in.
	res = e.postForm(c, "https://gate.test/keys/rename", url.Values{"csrf": {csrf}, "id": {firstID}, "name": {"Old key"}}, "https://gate.test")
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("rename = %d", res.StatusCode)
	}
	res = e.postForm(c, "https://gate.test/keys/remove", url.Values{"csrf": {csrf}, "id": {firstID}}, "https://gate.test")
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("remove = %d %s", res.StatusCode, res.body)
	}
	creds, _ = e.webauthn.Credentials(t.Context(), "ann@example.com")
	if len(creds) != 1 || creds[0].Name != "Backup <key>" {
		t.Errorf("keys after removal = %+v", creds)
	}
	e.echo(e.login(e.client(), second, "https://app.test/", "ann@example.com", "eng"))
	// Removing a key with a stale assertion asks for a step-up first.
	e.clock.Advance(10 * time.Minute)
	res = e.postForm(c, "https://gate.test/keys/remove", url.Values{"csrf": {csrf}, "id": {credID(creds[0].ID)}}, "https://gate.test")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/auth/stepup") {
		t.Errorf("remove with a stale assertion = %d to %q, want the step-up", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestFlowExpiredSessions(t *testing.T) {
	tests := []struct {
		name    string
		advance time.Duration
	}{
		{"idle for more than an hour", 61 * time.Minute},
		{"past the 12h absolute lifetime", 13 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newPTEnv(t)
			c := e.client()
			e.echo(e.login(c, newPTKey(), "https://app.test/", "ann@example.com", "eng"))
			e.clock.Advance(tt.advance)
			res := e.get(c, "https://app.test/x")
			if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "https://gate.test/auth/login?rd=") {
				t.Errorf("app after %v = %d to %q, want the login", tt.advance, res.StatusCode, res.Header.Get("Location"))
			}
			res = e.get(c, "https://gate.test/")
			if res.StatusCode != http.StatusOK || !strings.Contains(res.body, `href="/auth/login"`) {
				t.Errorf("portal after %v = %d, want the sign-in page", tt.advance, res.StatusCode)
			}
		})
	}
}
