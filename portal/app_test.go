package portal

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/identity"
)

func TestAppWithoutSessionRedirectsToLogin(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	tests := []struct {
		name, url, wantRD string
	}{
		{"root", "https://app.test/", "https://app.test/"},
		{"path and query", "https://app.test/dash/x%2Fy?a=1&b=%C3%A9#frag", "https://app.test/dash/x%2Fy?a=1&b=%C3%A9"},
		{"client host port ignored", "https://app.test:9999/q", "https://app.test/q"},
		{"dot segments kept verbatim", "https://app.test/a/../b", "https://app.test/a/../b"},
		{"too long", "https://app.test/" + strings.Repeat("a", 3000), "https://app.test/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.get(c, tt.url)
			if res.StatusCode != http.StatusFound {
				t.Fatalf("GET %s = %d, want 302", tt.url, res.StatusCode)
			}
			// The trip is bound to this browser: a nonce cookie on the app
			// host, its binding (never the nonce) in the URL.
			bind := e.tripBinding(c, "app.test")
			want := "https://gate.test/auth/login?rd=" + url.QueryEscape(tt.wantRD) + "&bind=" + bind
			if got := res.Header.Get("Location"); bind == "" || got != want {
				t.Errorf("GET %s Location = %q, want %q", tt.url, got, want)
			}
		})
	}
	// One nonce per browser: every trip above reused the first one, and it
	// is a short-lived, host-only, HttpOnly, Secure, Lax cookie.
	res := e.get(e.client(), "https://app.test/")
	var trip *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == tripCookie {
			trip = ck
		}
	}
	if trip == nil || !trip.Secure || !trip.HttpOnly || trip.SameSite != http.SameSiteLaxMode || trip.Path != "/" ||
		trip.Domain != "" || trip.MaxAge <= 0 || trip.MaxAge > int(identity.HandoffNonceTTL.Seconds()) {
		t.Errorf("trip cookie = %+v", trip)
	}
	if strings.Contains(res.Header.Get("Location"), trip.Value) {
		t.Errorf("the trip nonce itself is in the URL")
	}
	if n := e.upHits.get(); n != 0 {
		t.Errorf("upstream saw %d requests without a session, want 0", n)
	}
}

func TestAppRefusesBadCookies(t *testing.T) {
	e := newPTEnv(t)
	ctx := t.Context()
	// A real portal session's cookie, sealed for the portal host.
	s, err := e.sessions.Start(ctx, &identity.Login{Email: "ann@example.com", Groups: []string{"eng"}}, "gate.test")
	if err != nil {
		t.Fatal(err)
	}
	portalCookie, err := e.codec.Seal(SessionCookie, "gate.test", s.ID)
	if err != nil {
		t.Fatal(err)
	}
	pendingOnApp, err := e.codec.Seal(SessionCookie, "app.test", s.ID)
	if err != nil {
		t.Fatal(err)
	}
	otherName, err := e.codec.Seal(SessionCookie+"-flow", "app.test", s.ID)
	if err != nil {
		t.Fatal(err)
	}
	tampered := []byte(pendingOnApp)
	mid := len(tampered) / 2
	if tampered[mid] == 'A' {
		tampered[mid] = 'B'
	} else {
		tampered[mid] = 'A'
	}
	forgedID, err := e.codec.Seal(SessionCookie, "app.test", "not-a-session-id")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, value string }{
		{"garbage", "garbage"},
		{"empty-ish", "."},
		{"huge", strings.Repeat("A", 4000)},
		{"non-ascii", "\u00e9\u00e9\u00e9"},
		{"tampered", string(tampered)},
		{"truncated", pendingOnApp[:len(pendingOnApp)-3]},
		{"sealed for the portal host", portalCookie},
		{"sealed under another cookie name", otherName},
		{"unknown session id", forgedID},
		{"pending session (no security key yet)", pendingOnApp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, "https://app.test/secret", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Cookie", SessionCookie+"="+tt.value)
			c := e.client()
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "https://gate.test/auth/login?rd=") {
				t.Errorf("cookie %s: got %d Location %q, want 302 to the login", tt.name, res.StatusCode, res.Header.Get("Location"))
			}
		})
	}
	if n := e.upHits.get(); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}
}

func TestAppHandoffRefusals(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	// With a trip cookie (this browser started a sign-in), a bad code goes
	// back to the app's root to start again; without one, it is refused
	// with a page (no redirect: a browser that drops the cookie would
	// loop). Never anywhere a parameter says.
	tests := []struct {
		name, query string
		trip        bool
		status      int
	}{
		{"no code", "", true, http.StatusFound},
		{"unknown code", "?code=bogus", true, http.StatusFound},
		{"huge code", "?code=" + strings.Repeat("x", 1000), true, http.StatusFound},
		{"redirect parameter ignored", "?code=bogus&rd=https://evil.example/", true, http.StatusFound},
		{"unknown code, no trip", "?code=bogus", false, http.StatusForbidden},
		{"redirect parameter ignored, no trip", "?code=bogus&rd=https://evil.example/", false, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.trip {
				e.get(c, "https://app.test/") // sets the trip cookie
			}
			res := e.get(c, "https://app.test/.gatehouse/handoff"+tt.query)
			want := ""
			if tt.status == http.StatusFound {
				want = "/"
			}
			if res.StatusCode != tt.status || res.Header.Get("Location") != want {
				t.Errorf("handoff%s = %d to %q, want %d to %q", tt.query, res.StatusCode, res.Header.Get("Location"), tt.status, want)
			}
			if jarCookie(c, "app.test", tripCookie) != "" {
				t.Errorf("handoff%s left the trip cookie", tt.query)
			}
			if e.cookie(c, "app.test") != "" {
				t.Errorf("handoff%s set a session cookie", tt.query)
			}
		})
	}
}

func TestAppReservedPathsNeverReachUpstream(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	tests := []struct {
		path string
		code int
	}{
		{"/.gatehouse/", 404},
		{"/.gatehouse/nope", 404},
		{"/.gatehouse/static/style.css", 200},
		{"/.gatehouse/static/../../etc/passwd", 404},
	}
	for _, tt := range tests {
		res := e.get(c, "https://app.test"+tt.path)
		if res.StatusCode != tt.code {
			t.Errorf("GET %s = %d, want %d", tt.path, res.StatusCode, tt.code)
		}
	}
	if n := e.upHits.get(); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}
}

func TestLocalPath(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"/", true},
		{"/a?b=c", true},
		{"", false},
		{"//evil.example", false},
		{"/\\evil.example", false},
		{"https://evil.example", false},
		{"/a\nb", false},
		{"/a\\b", false},
		{"evil", false},
	}
	for _, tt := range tests {
		if got := localPath(tt.in); got != tt.want {
			t.Errorf("localPath(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSessionCookieValue(t *testing.T) {
	tests := []struct {
		name string
		hdr  []string
		want string
	}{
		{"absent", nil, ""},
		{"only", []string{SessionCookie + "=abc"}, "abc"},
		{"among others", []string{"a=1; " + SessionCookie + "=abc; b=2"}, "abc"},
		{"second header (HTTP/2)", []string{"a=1", SessionCookie + "=abc"}, "abc"},
		{"first wins", []string{SessionCookie + "=one; " + SessionCookie + "=two"}, "one"},
		{"quoted", []string{SessionCookie + `="abc"`}, "abc"},
		{"prefix of another name", []string{SessionCookie + "-flow=x"}, ""},
		{"name case differs", []string{"__host-gatehouse=abc"}, ""},
		{"space around", []string{"a=1;  " + SessionCookie + "=abc  "}, "abc"},
		{"bad byte", []string{SessionCookie + "=a\x01b"}, ""},
		{"empty value", []string{SessionCookie + "="}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.hdr {
				h.Add("Cookie", v)
			}
			if got := sessionCookieValue(h); got != tt.want {
				t.Errorf("sessionCookieValue(%q) = %q, want %q", tt.hdr, got, tt.want)
			}
			// It agrees with net/http wherever net/http finds a value.
			r := &http.Request{Header: h}
			if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" && tt.want != "" && c.Value != tt.want {
				t.Errorf("net/http says %q, sessionCookieValue %q", c.Value, tt.want)
			}
		})
	}
}
