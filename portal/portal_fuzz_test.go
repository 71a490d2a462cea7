package portal

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
)

// FuzzPortalSafeReturn checks that whatever a return URL says, the portal
// only ever redirects to one of its own paths or to an https URL on the
// portal's or a route's host, on the portal's port.
func FuzzPortalSafeReturn(f *testing.F) {
	for _, s := range []string{"/", "/a?b=c", "//evil.example", "/\\evil.example", "https://evil.example",
		"https://app.test/x", "https://app.test:443/x", "https://app.test:444/", "https://app.test@evil.example",
		"https:/\\evil.example", "https:evil.example", "HTTPS://APP.TEST/", "/%2F%2Fevil.example", "\t/x",
		"/x#frag", "https://app.test\\@evil.example/", "https://[::1]/", "https://app.test./", "/..//evil.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p := fuzzPortal(t)
		out := p.safeReturn(raw)
		if out == "/" {
			return
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < 0x21 || c >= 0x7f || c == '\\' {
				t.Fatalf("safeReturn(%q) = %q: contains byte %#x", raw, out, c)
			}
		}
		if strings.HasPrefix(out, "/") {
			if strings.HasPrefix(out, "//") {
				t.Fatalf("safeReturn(%q) = %q: scheme-relative", raw, out)
			}
			// A browser resolves it against the portal: it must stay there.
			u, err := url.Parse("https://gate.test" + out)
			if err != nil || u.Host != "gate.test" {
				t.Fatalf("safeReturn(%q) = %q leaves the portal", raw, out)
			}
			return
		}
		u, err := url.Parse(out)
		if err != nil || u.Scheme != "https" || u.User != nil {
			t.Fatalf("safeReturn(%q) = %q: not a plain https URL", raw, out)
		}
		switch strings.ToLower(u.Host) {
		case "gate.test", "app.test", "other.test", "fresh.test", "gate.test:443", "app.test:443", "other.test:443", "fresh.test:443":
		default:
			t.Fatalf("safeReturn(%q) = %q: host %q is not ours", raw, out, u.Host)
		}
		// What the browser gets after a redirect must be the same place.
		rec := httptest.NewRecorder()
		http.Redirect(rec, httptest.NewRequest("GET", "https://gate.test/auth/login", nil), out, http.StatusFound)
		loc, err := url.Parse(rec.Header().Get("Location"))
		if err != nil || !strings.EqualFold(loc.Host, u.Host) {
			t.Fatalf("redirect to %q sends the browser to %q", out, rec.Header().Get("Location"))
		}
	})
}

// fuzzPortal builds a portal just far enough for safeReturn.
func fuzzPortal(t *testing.T) *Portal {
	cfg := ptConfig("http://127.0.0.1:1")
	pub, err := parsePublicURL(cfg.PublicURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &Portal{cfg: cfg, public: pub, host: "gate.test", routes: map[string]*config.Route{}}
	for i := range cfg.Routes {
		p.routes[cfg.Routes[i].Host] = &cfg.Routes[i]
	}
	return p
}

// FuzzAppCookieAndHandoff sends arbitrary cookie values and handoff codes
// to an app gate: it must answer with a redirect to the login, never reach
// the upstream, never set a cookie and never panic.
func FuzzAppCookieAndHandoff(f *testing.F) {
	f.Add("garbage", "code")
	f.Add("", "")
	f.Add(strings.Repeat("A", 300), strings.Repeat("b", 300))
	f.Add("v1.AAAA.BBBB", "x\x00y")
	e := newPTEnvWith(f, ptOptions{quiet: true})
	a, hits := e.apps["app.test"], e.upHits
	f.Fuzz(func(t *testing.T, cookie, code string) {
		req := httptest.NewRequest("GET", "https://app.test/x", nil)
		req.Header.Set("Cookie", SessionCookie+"="+cookie)
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		if rec.Code != http.StatusFound || !strings.HasPrefix(rec.Header().Get("Location"), "https://gate.test/auth/login?rd=") {
			t.Fatalf("cookie %q: %d to %q", cookie, rec.Code, rec.Header().Get("Location"))
		}
		req = httptest.NewRequest("GET", "https://app.test/.gatehouse/handoff?code="+url.QueryEscape(code), nil)
		rec = httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		// Without this browser's trip cookie no code redeems: an empty or
		// oversized one goes back to the app, any other is refused.
		if rec.Code != http.StatusForbidden && (rec.Code != http.StatusFound || rec.Header().Get("Location") != "/") {
			t.Fatalf("handoff code %q: %d to %q", code, rec.Code, rec.Header().Get("Location"))
		}
		for _, c := range rec.Result().Cookies() {
			if c.Name != tripCookie || c.MaxAge >= 0 {
				t.Fatalf("handoff code %q set cookie %s", code, c)
			}
		}
		if hits.get() != 0 {
			t.Fatalf("upstream reached")
		}
	})
}
