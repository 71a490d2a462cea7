package portal

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/identity"
)

func TestPortalLoginRefusesOpenRedirects(t *testing.T) {
	e := newPTEnv(t)
	tests := []struct{ rd, want string }{
		{"", "/"},
		{"/", "/"},
		{"/approve/abc?x=1", "/approve/abc?x=1"},
		{"https://app.test/dash?q=1", "https://app.test/dash?q=1"},
		{"https://gate.test/keys/add", "https://gate.test/keys/add"},
		{"//evil.example", "/"},
		{"//evil.example/path", "/"},
		{"https://evil.example", "/"},
		{"https://evil.example/https://app.test/", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"http://app.test/", "/"},
		{"javascript:alert(1)", "/"},
		{"https://app.test@evil.example/", "/"},
		{"https://user@app.test/", "/"},
		{"https://app.test:8443/", "/"},
		{"https://app.test.evil.example/", "/"},
		{"/%0d%0aSet-Cookie:x=y", "/"}, // encoded controls are refused since dd2e765
		{"/a\r\nSet-Cookie: x=y", "/"},
		{"https://APP.test/x", "https://APP.test/x"},
		{"/" + strings.Repeat("a", 3000), "/"},
		{"data:text/html,hi", "/"},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			c := e.client()
			res := e.get(c, "https://gate.test/auth/login?rd="+url.QueryEscape(tt.rd))
			if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "https://idp.test/") {
				t.Fatalf("login?rd=%q = %d to %q, want 302 to the IdP", tt.rd, res.StatusCode, res.Header.Get("Location"))
			}
			if got := e.oidc.lastBegun(); got != tt.want {
				t.Errorf("login?rd=%q started a login returning to %q, want %q", tt.rd, got, tt.want)
			}
		})
	}
}

func TestPortalCallbackStartsPendingSession(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	res := e.signIn(c, "https://app.test/dash?q=1", "ann@example.com", "eng")
	if res.StatusCode != http.StatusFound {
		t.Fatalf("callback = %d, want 302", res.StatusCode)
	}
	want := "/auth/verify?rd=" + url.QueryEscape("https://app.test/dash?q=1") + "&bind=" + e.tripBinding(c, "app.test")
	if got := res.Header.Get("Location"); got != want {
		t.Errorf("callback Location = %q, want %q", got, want)
	}
	sc := res.Header.Values("Set-Cookie")
	var session string
	for _, v := range sc {
		if strings.HasPrefix(v, SessionCookie+"=") {
			session = v
		}
	}
	for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(session, attr) {
			t.Errorf("session Set-Cookie %q lacks %s", session, attr)
		}
	}
	if strings.Contains(strings.ToLower(session), "domain=") {
		t.Errorf("session Set-Cookie %q has a Domain", session)
	}
	// A pending session does not open apps: the app sends it back to the
	// login, and the login to the security key step.
	res = e.get(c, "https://app.test/dash?q=1")
	res = e.get(c, res.Header.Get("Location"))
	if got := res.Header.Get("Location"); res.StatusCode != http.StatusFound || !strings.HasPrefix(got, "/auth/verify?rd=") {
		t.Errorf("pending session at login = %d to %q, want the security key step", res.StatusCode, got)
	}
	if n := e.upHits.get(); n != 0 {
		t.Errorf("upstream saw %d requests from a pending session, want 0", n)
	}
}

func TestPortalCallbackRefusals(t *testing.T) {
	e := newPTEnv(t)
	tests := []struct {
		name  string
		query func(state string) string
		flow  bool // send the flow cookie
		code  int
	}{
		{"idp error", func(string) string { return "?error=access_denied" }, true, http.StatusForbidden},
		{"unknown state", func(string) string { return "?state=nope&code=ok:a@example.com:eng" }, true, http.StatusForbidden},
		{"flow cookie missing", func(s string) string { return "?state=" + s + "&code=ok:a@example.com:eng" }, false, http.StatusForbidden},
		{"bad code", func(s string) string { return "?state=" + s + "&code=forged" }, true, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.client()
			res := e.get(c, "https://gate.test/auth/login")
			state := strings.TrimPrefix(res.Header.Get("Location"), "https://idp.test/auth?state=")
			if !tt.flow {
				c = e.client()
			}
			res = e.get(c, "https://gate.test/auth/callback"+tt.query(state))
			if res.StatusCode != tt.code {
				t.Errorf("callback = %d, want %d", res.StatusCode, tt.code)
			}
			if e.cookie(c, "gate.test") != "" {
				t.Errorf("a refused callback set a session cookie")
			}
			if res.Header.Get("X-Request-Id") == "" || !strings.Contains(res.body, res.Header.Get("X-Request-Id")) {
				t.Errorf("refusal page has no request ID")
			}
		})
	}
	if len(e.audit.find("sso.login", audit.Deny)) == 0 {
		t.Errorf("the IdP's error was not audited")
	}
}

func TestPortalPostsNeedCSRFAndOrigin(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	e.signIn(c, "https://gate.test/auth/login", "ann@example.com", "eng")
	sid := e.sessionID(c)
	good := csrfToken(sid)
	other := csrfToken("some-other-session")
	tests := []struct {
		name, path, csrf, origin string
	}{
		{"logout without token", "/auth/logout", "", "https://gate.test"},
		{"logout with another session's token", "/auth/logout", other, "https://gate.test"},
		{"logout from another origin", "/auth/logout", good, "https://evil.example"},
		{"logout from an app origin", "/auth/logout", good, "https://app.test"},
		{"logout without origin", "/auth/logout", good, ""},
		{"signout-all without token", "/sessions/signout-all", "", "https://gate.test"},
		{"key removal without token", "/keys/remove", "", "https://gate.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := url.Values{"decision": {"approve"}, "confirm": {"yes"}, "id": {"x"}}
			if tt.csrf != "" {
				v.Set("csrf", tt.csrf)
			}
			res := e.postForm(c, "https://gate.test"+tt.path, v, tt.origin)
			if res.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s = %d, want 403", tt.path, res.StatusCode)
			}
		})
	}
	// The JSON endpoints take the token in a header.
	for _, path := range []string{"/auth/webauthn/assert/begin", "/auth/webauthn/register/begin"} {
		res := e.do(c, http.MethodPost, "https://gate.test"+path, strings.NewReader("{}"),
			map[string]string{"Content-Type": "application/json", "Origin": "https://gate.test"})
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s without token = %d, want 403", path, res.StatusCode)
		}
		res = e.do(c, http.MethodPost, "https://gate.test"+path, strings.NewReader("{}"),
			map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example", csrfHeader: good})
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s cross-origin = %d, want 403", path, res.StatusCode)
		}
	}
	if got := len(e.audit.find("portal.request", audit.Deny)); got < len(tests) {
		t.Errorf("audited %d refused requests, want at least %d", got, len(tests))
	}
	// The session survived every refused logout.
	if _, err := e.sessions.Lookup(t.Context(), sid, "gate.test"); err != nil {
		t.Errorf("session gone after refused requests: %v", err)
	}
	// GET never changes state.
	res := e.get(c, "https://gate.test/auth/logout")
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /auth/logout = %d, want 405", res.StatusCode)
	}
}

func TestPortalLogoutEndsSession(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	e.signIn(c, "https://gate.test/auth/login", "ann@example.com", "eng")
	sid := e.sessionID(c)
	res := e.postForm(c, "https://gate.test/auth/logout", url.Values{"csrf": {csrfToken(sid)}}, "https://gate.test")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/?signed_out=1" {
		t.Fatalf("logout = %d to %q, want 303 to /?signed_out=1", res.StatusCode, res.Header.Get("Location"))
	}
	if _, err := e.sessions.Lookup(t.Context(), sid, "gate.test"); err == nil {
		t.Errorf("session still valid after logout")
	}
	res = e.get(c, "https://gate.test/?signed_out=1")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.body, "You are signed out.") {
		t.Errorf("home after logout = %d, want the sign-in page with a notice", res.StatusCode)
	}
}

func TestPortalSecurityHeadersAndNotFound(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	res := e.get(c, "https://gate.test/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", res.StatusCode)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	for path, code := range map[string]int{"/nope": 404, "/auth": 404, "/.well-known/jwks.json": 200, "/static/webauthn.js": 200} {
		if res := e.get(c, "https://gate.test"+path); res.StatusCode != code {
			t.Errorf("GET %s = %d, want %d", path, res.StatusCode, code)
		}
	}
	res = e.do(c, http.MethodDelete, "https://gate.test/auth/login", nil, nil)
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /auth/login = %d, want 405", res.StatusCode)
	}
}

func TestPortalRateLimitsLogin(t *testing.T) {
	e := newPTEnv(t)
	e.limiter.PerSource = identity.Limit{N: 3, Window: time.Minute}
	c := e.client()
	for i := 0; i < 3; i++ {
		if res := e.get(c, "https://gate.test/auth/login"); res.StatusCode != http.StatusFound {
			t.Fatalf("login %d = %d, want 302", i, res.StatusCode)
		}
	}
	res := e.get(c, "https://gate.test/auth/login")
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth login = %d, want 429", res.StatusCode)
	}
	if ra := res.Header.Get("Retry-After"); ra == "" {
		t.Errorf("429 without Retry-After")
	}
	if len(e.audit.find(identity.EventRateLimit, audit.Deny)) == 0 {
		t.Errorf("rate limit refusal not audited")
	}
}

// TestPortalStoreDownSaysUnavailable checks that a sign-in the portal
// cannot start because the store is unreachable fails closed with a page
// that says Gatehouse is unavailable, not that she tried too often.
func TestPortalStoreDownSaysUnavailable(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	res := e.get(c, "https://gate.test/auth/login")
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("login with the store down = %d, want 503", res.StatusCode)
	}
	if !strings.Contains(res.body, "Gatehouse is unavailable") || strings.Contains(res.body, "Too many attempts") {
		t.Errorf("page does not say Gatehouse is unavailable:\n%s", res.body)
	}
}
