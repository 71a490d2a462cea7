package web

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFindsEveryPage(t *testing.T) {
	p, err := Parse()
	if err != nil {
		t.Fatalf("Parse() error = %v", err)
	}
	want := []string{"approve", "assert", "denied", "enroll", "error", "home", "login", "review", "review_play"}
	if diff := cmp.Diff(want, p.Names()); diff != "" {
		t.Errorf("Names() mismatch (-want +got):\n%s", diff)
	}
}

// inlineScript finds inline script, inline event handlers and inline style
// attributes, which a CSP of default-src 'self' would block.
var inlineScript = regexp.MustCompile(`(?i)<script(?:[^>]*)>\s*[^<\s]|\son[a-z]+\s*=|\sstyle\s*=|javascript:`)

func TestRenderEveryPage(t *testing.T) {
	p, err := Parse()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hostile := `"><script>alert(1)</script>`
	tests := []struct {
		page string
		data Page
		want []string // substrings the HTML must contain
	}{
		{"home", Page{Title: "Home", Email: "a@example.com", CSRF: "tok", Body: Home{
			Apps:     []App{{Name: "grafana", URL: "https://grafana.example.com/"}},
			Keys:     []Key{{ID: "k1", Name: hostile, Created: now}, {ID: "k2", Name: "spare"}},
			Sessions: []Session{{ID: "s1", Created: now, Source: "192.0.2.1", Agent: hostile, Current: true}},
		}}, []string{`href="https://grafana.example.com/"`, `action="/keys/remove"`, `name="csrf" value="tok"`, "(this one)", `action="/auth/logout"`}},
		{"home", Page{Title: "Home", Email: "a@example.com", CSRF: "tok", Body: Home{
			Keys: []Key{{ID: "k1", Name: "only"}},
		}}, []string{"Your only key", "No apps are open to you"}},
		{"login", Page{Title: "Sign in", Body: Login{LoginURL: "/auth/login?rd=%2F", Notice: "You are signed out."}},
			[]string{`href="/auth/login?rd=%2F"`, "You are signed out."}},
		{"enroll", Page{Title: "Enrol", CSRF: "tok", Script: true, Body: Ceremony{Mode: ModeEnroll,
			RegisterBegin: "/auth/webauthn/register/begin", RegisterFinish: "/auth/webauthn/register/finish?rd=%2F"}},
			[]string{`data-mode="enroll"`, `data-register-finish="/auth/webauthn/register/finish?rd=%2F"`, `src="/static/webauthn.js?v=`, `data-csrf="tok"`}},
		{"enroll", Page{Title: "Add", CSRF: "tok", Script: true, Body: Ceremony{Mode: ModeAdd}}, []string{"Add a security key"}},
		{"assert", Page{Title: "Confirm", CSRF: "tok", Script: true, Body: Ceremony{Mode: ModeStepUp, Resource: hostile,
			AssertBegin: "/auth/webauthn/assert/begin"}}, []string{"Confirm it is you", `data-assert-begin="/auth/webauthn/assert/begin"`}},
		{"approve", Page{Title: "Approve", Email: "a@example.com", CSRF: "tok", Script: true, Body: Approve{
			Action: "/approve/abc", Target: "prod-db", Login: "ubuntu", Fingerprint: "SHA256:xyz", Created: now,
			Source: hostile, Expires: now, Error: "wrong code", AttemptsLeft: 2}},
			[]string{`action="/approve/abc"`, "prod-db", "SHA256:xyz", `value="deny"`, `name="code"`, "wrong code", "2 attempts left"}},
		{"denied", Page{Title: "Denied", Email: "b@example.com", RequestID: "rid42", Body: Denied{
			Resource: "grafana", Rule: "route:grafana", Reason: "route grafana: requires group engineering", Ask: []string{"group security"}}},
			[]string{"rid42", "route:grafana", "requires group engineering", "group security"}},
		{"error", Page{Title: "Error", RequestID: "rid43", Body: Message{Status: 500, Heading: "Something failed", Link: "/", LinkText: "Home"}},
			[]string{"Something failed", "rid43"}},
		{"review", Page{Title: "Recorded sessions", Email: "r@example.com", CSRF: "tok", Body: ReviewList{
			Filter:   ReviewFilter{Query: hostile, Status: "live", Error: "bad filter"},
			Statuses: []string{"live", "complete"}, CanTerminate: true, More: true, Limit: 200,
			Rows: []ReviewRow{
				{ID: "rec1", User: "ann@example.com", Target: "prod-db", Login: "ubuntu", Kind: "shell", Status: "live", Live: true, Start: now,
					Duration: "1m0s", PlayURL: "/review/s/rec1", WatchURL: "/review/s/rec1?live=1", TerminateURL: "/review/s/rec1/terminate"},
				{ID: "rec2", User: "bob@example.com", Target: "web", Login: "root", Kind: "exec", Command: hostile, Status: "complete",
					EndReason: "normal", Start: now, Duration: "3s", PlayURL: "/review/s/rec2"},
			}}},
			[]string{`name="q" type="search" value="&#34;&gt;&lt;script&gt;`, `<option value="live" selected>`, "bad filter", `href="/review/s/rec1?live=1"`,
				`action="/review/s/rec1/terminate"`, `name="csrf" value="tok"`, `class="badge live"`, `href="/review/s/rec2"`, "the newest 200", "2 sessions"}},
		{"review_play", Page{Title: "Session", Email: "r@example.com", CSRF: "tok", Body: ReviewPlayer{
			Session: ReviewRow{ID: "rec1", User: "ann@example.com", Target: "prod-db", Login: "ubuntu", Status: "live", Live: true, Cols: 120, Rows: 40,
				PlayURL: "/review/s/rec1", WatchURL: "/review/s/rec1?live=1", TerminateURL: "/review/s/rec1/terminate"},
			CastURL: "/review/s/rec1/cast", LiveURL: "/review/s/rec1/live", PlayerReady: true, CanTerminate: true, Back: "/review/",
			Events: []ReviewEvent{{Offset: 65.5, At: "1:05", Type: "exec", Fields: []Field{{Name: "command", Value: hostile}}}}}},
			[]string{`data-cast="/review/s/rec1/cast"`, `data-live="/review/s/rec1/live"`, `data-cols="120"`, `src="/static/vendor/asciinema-player.min.js?v=`,
				`href="/static/vendor/asciinema-player.css?v=`, `src="/static/review.js?v=`, `data-t="65.500"`, "1:05", `action="/review/s/rec1/terminate"`, `id="terminate"`}},
		{"review_play", Page{Title: "Session", Email: "r@example.com", Body: ReviewPlayer{
			Session: ReviewRow{ID: "rec2", Status: "complete", PlayURL: "/review/s/rec2"}, CastURL: "/review/s/rec2/cast", EventsError: "unreadable"}},
			[]string{`id="player-missing"`, `href="/review/s/rec2/cast"`, "unreadable"}},
	}
	for _, tt := range tests {
		t.Run(tt.page, func(t *testing.T) {
			b, err := p.RenderBytes(tt.page, tt.data)
			if err != nil {
				t.Fatalf("RenderBytes(%q) error = %v", tt.page, err)
			}
			html := string(b)
			for _, w := range tt.want {
				if !strings.Contains(html, w) {
					t.Errorf("RenderBytes(%q) lacks %q", tt.page, w)
				}
			}
			if strings.Contains(html, "<script>alert(1)") {
				t.Errorf("RenderBytes(%q) did not escape hostile input", tt.page)
			}
			if m := inlineScript.FindString(html); m != "" {
				t.Errorf("RenderBytes(%q) has inline script or style %q (CSP default-src 'self' blocks it)", tt.page, m)
			}
		})
	}
}

// TestPlayerPageHeadOnlyThere checks that the player's files are linked
// from the player page only, and only when they are built in.
func TestPlayerPageHeadOnlyThere(t *testing.T) {
	p, err := Parse()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		page string
		body any
		want bool
	}{
		{"review_play", ReviewPlayer{PlayerReady: true}, true},
		{"review_play", ReviewPlayer{PlayerReady: false}, false},
		{"review", ReviewList{}, false},
		{"home", Home{}, false},
	} {
		b, err := p.RenderBytes(tt.page, Page{Title: "x", Body: tt.body})
		if err != nil {
			t.Fatalf("RenderBytes(%s): %v", tt.page, err)
		}
		if got := strings.Contains(string(b), "asciinema-player.min.js"); got != tt.want {
			t.Errorf("%s with %+v links the player: %v, want %v", tt.page, tt.body, got, tt.want)
		}
	}
}

// TestPlayerBuilt checks PlayerBuilt against the embedded files: the
// player is served from the binary exactly when install-deps copied it.
func TestPlayerBuilt(t *testing.T) {
	h := Static()
	served := true
	for _, name := range []string{PlayerScript, PlayerStyle} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", StaticPrefix+name, nil))
		served = served && rec.Code == http.StatusOK
	}
	if PlayerBuilt() != served {
		t.Fatalf("PlayerBuilt() = %v, but the files are served: %v", PlayerBuilt(), served)
	}
	// make test runs scripts/install-deps.sh first, which copies the
	// player in: a binary built by the tests' route has it.
	if !served {
		t.Fatal("player not built: run scripts/install-deps.sh (it copies the asciinema player into web/static/vendor/)")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", StaticPrefix+PlayerScript, nil))
	if got := rec.Header().Get("Content-Type"); got != "text/javascript; charset=utf-8" || !strings.Contains(rec.Body.String(), "AsciinemaPlayer") {
		t.Errorf("player script: Content-Type %q, %d bytes without AsciinemaPlayer", got, rec.Body.Len())
	}
}

func TestRenderUnknownPage(t *testing.T) {
	p, err := Parse()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	if err := p.Render(&sb, "nope", Page{}); err == nil {
		t.Errorf("Render(nope) error = nil, want an error")
	}
	if sb.Len() != 0 {
		t.Errorf("Render(nope) wrote %d bytes, want 0", sb.Len())
	}
}

func TestStatic(t *testing.T) {
	h := Static()
	tests := []struct {
		method, path string
		code         int
		ctype        string
	}{
		{"GET", "/static/webauthn.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/static/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/static/review.js", 200, "text/javascript; charset=utf-8"},
		{"HEAD", "/static/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/static/", 404, ""},
		{"GET", "/static/nope.js", 404, ""},
		{"GET", "/static/../web.go", 404, ""},
		{"POST", "/static/webauthn.js", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "https://gate.test"+tt.path, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.path, rec.Code, tt.code)
			}
			if tt.ctype != "" {
				if got := rec.Header().Get("Content-Type"); got != tt.ctype {
					t.Errorf("Content-Type = %q, want %q", got, tt.ctype)
				}
				if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
					t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
				}
			}
		})
	}
	// The script must not be served for a method that could change state.
	req := httptest.NewRequest(http.MethodPut, "/static/webauthn.js", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT = %d, want 405", rec.Code)
	}
}

func TestInlineScriptDetector(t *testing.T) {
	for _, bad := range []string{`<script>x()</script>`, `<button onclick="x()">`, `<p style="color:red">`, `<a href="javascript:x()">`} {
		if !inlineScript.MatchString(bad) {
			t.Errorf("inlineScript misses %q", bad)
		}
	}
	if good := `<script src="/static/webauthn.js?v=1" defer></script>`; inlineScript.MatchString(good) {
		t.Errorf("inlineScript flags %q", good)
	}
}

func TestAssetsPrefix(t *testing.T) {
	p, err := Parse()
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.RenderBytes("denied", Page{Title: "Denied", Assets: "/.gatehouse/static/", Home: "https://gate.test/", Body: Denied{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`href="/.gatehouse/static/style.css?v=`, `class="brand" href="https://gate.test/"`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("denied page lacks %q", w)
		}
	}
	h := StaticAt("/.gatehouse/static/")
	for path, code := range map[string]int{"/.gatehouse/static/style.css": 200, "/static/style.css": 404} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != code {
			t.Errorf("StaticAt GET %s = %d, want %d", path, rec.Code, code)
		}
	}
}
