package authz

import (
	"errors"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/gatehouse-dev/gatehouse/config"
)

// adminRoute is issue 12's probe route: everyone in "eng" may use it, only
// "ops" may use /admin.
func adminRoute() *config.Route {
	return &config.Route{
		Name:  "app",
		Allow: config.Allow{Groups: []string{"eng"}},
		Paths: []config.PathRule{{Prefix: "/admin", Allow: config.Allow{Groups: []string{"ops"}}}},
	}
}

func TestCanonicalPath(t *testing.T) {
	tests := []struct {
		raw  string
		want string // "" means refused
	}{
		// Issue 12, defect 2: each reached the upstream as is.
		{"/x/..;/admin", ""},
		{"/admin%00", ""},
		{"/admin%20", ""},
		{"/admin%09", ""},
		{"/admin.", ""},
		{"/admin%2f..%2fx", ""},
		{"/admin%2e%2e%2f", ""},
		{"/admin/%2e%2e/x", ""},
		// Issue 12: these were refused by the rule; they still must be.
		{"/ADMIN", "/ADMIN"},
		{"//admin", "/admin"},
		{"/x/../admin", ""},
		{"/%61dmin", "/admin"},

		// Plain and encoded dot segments in every case.
		{"/.", ""}, {"/..", ""}, {"/a/./b", ""}, {"/%2e", ""}, {"/%2E%2E", ""},
		{"/.%2e/admin", ""}, {"/%2e./admin", ""}, {"/%2E%2e", ""}, {"/a/...", ""},
		// Encoded slash and backslash in any case, raw backslash.
		{"/a%2Fb", ""}, {"/a%5cb", ""}, {"/a%5Cb", ""}, {`/a\b`, ""}, {`/\admin`, ""},
		// Path parameters anywhere.
		{"/admin;x", ""}, {"/a;/b", ""}, {"/;a", ""}, {"/a%3bb", ""},
		// Control bytes, raw and encoded, C0, DEL and C1.
		{"/a\x00", ""}, {"/a\x1fb", ""}, {"/a%7f", ""}, {"/a\x7f", ""}, {"/a%0d%0aSet-Cookie:x", ""}, {"/a%c2%85", ""},
		// Trailing dots and white space; leading white space.
		{"/admin%2e", ""}, {"/admin/x.", ""}, {"/admin%0b", ""}, {"/%20admin", ""}, {"/admin%c2%a0", ""}, {"/admin%e3%80%80", ""},
		// Invalid and overlong UTF-8.
		{"/%c0%af", ""}, {"/%c0%ae%c0%ae/admin", ""}, {"/%e0%80%af", ""}, {"/%ff", ""}, {"/a%c3", ""}, {"/\xc0\xaf", ""},
		// Malformed escapes and double encoding.
		{"/a%", ""}, {"/a%2", ""}, {"/a%zz", ""}, {"/a%u002e", ""}, {"/%252e%252e/admin", ""}, {"/%25%32%66", ""}, {"/100%25", ""},
		// Encoded ? and #: an upstream that decodes and re-parses ends the
		// path there ("/admin%3F" is "/admin").
		{"/admin%3F", ""}, {"/admin%3f", ""}, {"/admin%23", ""}, {"/a%3fb%23c", ""}, {"/admin%3Fx/y", ""},
		{"/admin?", ""}, {"/admin#", ""},
		// Non-ASCII runes that case mapping, folding or NFKC turn into ASCII:
		// Kelvin sign, dotless i, capital I with dot, long s, fullwidth
		// forms, a ligature, superscript two, one dot leader, fullwidth
		// solidus.
		{"/\u212Aey", ""}, {"/adm\u0131n", ""}, {"/\u0130tem", ""}, {"/\u017Fecret", ""},
		{"/\uFF41dmin", ""}, {"/%EF%BD%81dmin", ""}, {"/\uFF21DMIN", ""}, {"/admin\uFF01", ""},
		{"/\uFB01le", ""}, {"/x\u00B2", ""}, {"/a\u2024b", ""}, {"/a\uFF0Fadmin", ""},
		// Not a path.
		{"", ""}, {"admin", ""}, {"*", ""}, {"/" + strings.Repeat("a", MaxPathLen), ""},
		// Found by FuzzCanonicalPath: short enough raw, too long escaped.
		{"/" + strings.Repeat(`"`, MaxPathLen/3+1), ""},

		// Accepted forms and their one canonical spelling.
		{"/", "/"},
		{"//", "/"},
		{"/admin/", "/admin/"},
		{"/admin//x//", "/admin/x/"},
		{"/a%20b", "/a%20b"},
		{"/a b", "/a%20b"},
		{"/%7euser/%41%42c", "/~user/ABc"},
		{"/caf%c3%a9", "/caf%C3%A9"},
		{"/café", "/caf%C3%A9"},
		{"/p/caf%C3%A9", "/p/caf%C3%A9"},
		{"/文档/日本語", "/%E6%96%87%E6%A1%A3/%E6%97%A5%E6%9C%AC%E8%AA%9E"},
		{"/straße/Ωμέγα/ÉCOLE", "/stra%C3%9Fe/%CE%A9%CE%BC%CE%AD%CE%B3%CE%B1/%C3%89COLE"},
		{"/a,b=c+d@e:f!$&'()*", "/a,b=c+d@e:f!$&'()*"},
		{"/%2c%3d", "/,="},
		{"/.well-known/jwks.json", "/.well-known/jwks.json"},
		{"/a.b/c..d/..e", "/a.b/c..d/..e"},
		{"/a\"<>^`{|}", "/a%22%3C%3E%5E%60%7B%7C%7D"},
		{"/" + strings.Repeat(`"`, MaxPathLen/3), "/" + strings.Repeat("%22", MaxPathLen/3)},
	}
	for _, tt := range tests {
		got, err := CanonicalPath(tt.raw)
		if tt.want == "" {
			if err == nil || !errors.Is(err, ErrPathNotCanonical) || got != "" {
				t.Errorf("CanonicalPath(%q) = %q, %v; want refusal wrapping ErrPathNotCanonical", tt.raw, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CanonicalPath(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
		}
	}
}

// TestCanonicalPathAdminRule runs issue 12's probes the way the door will:
// canonicalise, refuse on error, else judge the canonical path. Every form
// either is refused or is caught by the /admin rule.
func TestCanonicalPathAdminRule(t *testing.T) {
	eng := Subject{Email: "mallory@example.com", Groups: []string{"eng"}, MFAAt: now}
	for _, raw := range []string{
		"/x/..;/admin", "/admin%00", "/admin%20", "/admin%09", "/admin.", "/admin%2f..%2fx",
		"/admin%2e%2e%2f", "/admin/%2e%2e/x", "/ADMIN", "//admin", "/x/../admin", "/%61dmin",
		"/Admin/x", "/%41DMIN//secret", "/admin/",
	} {
		canon, err := CanonicalPath(raw)
		if err != nil {
			continue
		}
		d := DecideRoute(eng, adminRoute(), time.Hour, canon, now)
		if d.Allow || d.Rule != "route:app:path:/admin" {
			t.Errorf("%q -> %q: decision %+v, want the /admin rule to deny", raw, canon, d)
		}
	}
	// The rule does not over-reach either.
	for _, raw := range []string{"/administrator", "/x/admin", "/adm%69n2"} {
		canon, err := CanonicalPath(raw)
		if err != nil {
			t.Fatalf("CanonicalPath(%q): %v", raw, err)
		}
		if d := DecideRoute(eng, adminRoute(), time.Hour, canon, now); !d.Allow {
			t.Errorf("%q -> %q: %+v, want allowed by the route", raw, canon, d)
		}
	}
}

// FuzzCanonicalPath checks the properties the door relies on: what
// CanonicalPath accepts is a fixed point, is a clean absolute path without
// any of the refused spellings, decodes exactly as a Go upstream decodes
// it, and is judged the same as the path that upstream resolves.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{
		"/", "//", "/admin", "/ADMIN/x/", "/%61dmin", "/x/..;/admin", "/admin%2f..%2fx", "/admin%2e%2e%2f",
		"/caf%c3%a9", "/%c0%af", "/a%25%32%66", "/a b/c", "/a%3Fb", "/.well-known/x", "/a\\b", "/admin%c2%a0",
		"/admin%23", "/\u212Aey", "/\uFF41dmin", "/adm\u0131n", "/\u017F", "/\u6587",
	} {
		f.Add(s)
	}
	ops := Subject{Email: "o@example.com", Groups: []string{"ops", "eng"}, MFAAt: now}
	eng := Subject{Email: "e@example.com", Groups: []string{"eng"}, MFAAt: now}
	f.Fuzz(func(t *testing.T, raw string) {
		canon, err := CanonicalPath(raw)
		if err != nil {
			if !errors.Is(err, ErrPathNotCanonical) || canon != "" {
				t.Fatalf("CanonicalPath(%q) = %q, %v", raw, canon, err)
			}
			// A refused path is never admitted, whoever asks.
			if d := DecideRoute(ops, adminRoute(), time.Hour, raw, now); d.Allow {
				t.Fatalf("refused path %q admitted: %+v", raw, d)
			}
			return
		}
		if again, err := CanonicalPath(canon); err != nil || again != canon {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", raw, canon, again, err)
		}
		if !strings.HasPrefix(canon, "/") || strings.ContainsAny(canon, ";\\") {
			t.Fatalf("CanonicalPath(%q) = %q", raw, canon)
		}
		// A Go upstream (net/http) reads canon back into this path.
		u, err := url.Parse("http://upstream" + canon)
		if err != nil {
			t.Fatalf("upstream cannot parse %q: %v", canon, err)
		}
		dec := u.Path
		// The door forwards with URL{Path: dec, RawPath: canon}; net/url
		// must then send canon byte for byte.
		if got := (&url.URL{Path: dec, RawPath: canon}).EscapedPath(); got != canon {
			t.Fatalf("forwarding %q would send %q", canon, got)
		}
		if !utf8.ValidString(dec) {
			t.Fatalf("%q decodes to invalid UTF-8", canon)
		}
		for _, r := range dec {
			if unicode.IsControl(r) || r == '\\' || r == ';' || r == '%' || r == '?' || r == '#' {
				t.Fatalf("%q decodes to %q with %q", canon, dec, r)
			}
			// No rune an upstream may read as ASCII: by case mapping, by
			// simple case folding, or by NFKC.
			if r < utf8.RuneSelf {
				continue
			}
			ascii := unicode.ToUpper(r) < utf8.RuneSelf || unicode.ToLower(r) < utf8.RuneSelf ||
				strings.ContainsFunc(norm.NFKC.String(string(r)), func(c rune) bool { return c < utf8.RuneSelf })
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				ascii = ascii || f < utf8.RuneSelf
			}
			if ascii {
				t.Fatalf("%q decodes to %q with %U, which an upstream may read as ASCII", canon, dec, r)
			}
		}
		for _, seg := range strings.Split(dec, "/") {
			if seg == "." || seg == ".." || strings.HasSuffix(seg, ".") {
				t.Fatalf("%q decodes to %q with a dot segment", canon, dec)
			}
		}
		// Resolving dot segments and slashes upstream changes nothing.
		clean := path.Clean(dec)
		if strings.HasSuffix(dec, "/") && dec != "/" {
			clean += "/"
		}
		if clean != dec {
			t.Fatalf("%q decodes to %q, which an upstream resolves to %q", canon, dec, clean)
		}
		// Re-escaped by net/url, the upstream's path has the same canonical
		// form and gets the same decision as canon.
		reesc := (&url.URL{Path: clean}).EscapedPath()
		c2, err := CanonicalPath(reesc)
		// net/url escapes sub-delimiters that canon keeps as they are
		// ("'", "!", "*", "(", ")"), so its spelling can be up to three
		// times longer. Past MaxPathLen it is refused: fail closed, never
		// a different decision.
		overLong := len(reesc) > MaxPathLen
		switch {
		case overLong && !errors.Is(err, ErrPathNotCanonical):
			t.Fatalf("over-long upstream path %q (from %q) canonicalises to %q, %v", reesc, canon, c2, err)
		case !overLong && (err != nil || c2 != canon):
			t.Fatalf("upstream path %q (from %q) canonicalises to %q, %v", reesc, canon, c2, err)
		}
		for _, s := range []Subject{ops, eng} {
			d1 := DecideRoute(s, adminRoute(), time.Hour, canon, now)
			d2 := DecideRoute(s, adminRoute(), time.Hour, reesc, now)
			if overLong && d2.Allow || !overLong && d1 != d2 {
				t.Fatalf("decision on %q %+v, on upstream's %q %+v", canon, d1, reesc, d2)
			}
		}
		// An admin path by any spelling is the admin rule's.
		if strings.HasPrefix(strings.ToLower(clean+"/"), "/admin/") {
			if d := DecideRoute(eng, adminRoute(), time.Hour, canon, now); d.Allow {
				t.Fatalf("%q (%q) escaped the /admin rule: %+v", raw, canon, d)
			}
		}
	})
}
