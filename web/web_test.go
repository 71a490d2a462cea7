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
	want := []string{"approve", "assert", "denied", "enroll", "error", "home", "login"}
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
