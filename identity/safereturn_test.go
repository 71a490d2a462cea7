package identity

import (
	"net/url"
	"strings"
	"testing"
)

func allowHosts(hosts ...string) func(string) bool {
	return func(h string) bool {
		for _, x := range hosts {
			if h == x {
				return true
			}
		}
		return false
	}
}

func TestSafeReturn(t *testing.T) {
	allowed := allowHosts("gate.example.com", "grafana.example.com", "app.localhost:8443")
	cases := []struct {
		raw  string
		want bool
	}{
		{"/", true},
		{"/dashboards?orgId=1&x=%2F%2F", true},
		{"/a/b#frag", true},
		{"https://grafana.example.com/d/abc?x=1", true},
		{"HTTPS://grafana.example.com/", true},
		{"https://GRAFANA.example.com/", true},
		{"https://app.localhost:8443/x", true},
		{"", false},
		{"//evil.example", false},
		{"///evil.example", false},
		{`/\evil.example`, false},
		{`\\evil.example`, false},
		{"https://evil.example/", false},
		{"https://evil.example", false},
		{"http://grafana.example.com/", false},
		{"javascript:alert(1)", false},
		{"JavaScript://grafana.example.com/%0aalert(1)", false},
		{"data:text/html,hi", false},
		{"https://user@grafana.example.com/", false},
		{"https://grafana.example.com@evil.example/", false},
		{"https://grafana.example.com:443@evil.example/", false},
		{"https:grafana.example.com", false},
		{"https:/grafana.example.com", false},
		{"https:///grafana.example.com", false},
		{"https://grafana.example.com:99999/", false},
		{"https://grafana.example.com:abc/", false},
		{"/\t/evil.example", false},
		{"/\n/evil.example", false},
		{"/ /evil.example", false},
		{" /ok", false},
		{"/ok\x00", false},
		{"/caf\u00e9", false},
		{"grafana.example.com/", false},
		{"?x=1", false},
		{"/" + strings.Repeat("a", 2048), false},
		{"https://grafana.example.com\\@evil.example/", false},
		{"https://grafana.example.com%2f@evil.example/", false},
		{"https://evil.example\\.grafana.example.com/", false},
		// Issue 12 defect 3: an allowed origin followed by "//" or by a
		// path that a browser resolves to "//".
		{"https://grafana.example.com//evil.com", false},
		{"https://GRAFANA.example.com//evil.com/x", false},
		{"https://grafana.example.com/.//evil.com", false},
		{"https://grafana.example.com/%2e//evil.com", false},
		{"https://grafana.example.com/a/..//evil.com", false},
		{"https://grafana.example.com/a/%2E%2e/b", false},
		{"/.//evil.com", false},
		{"/..//evil.com", false},
		{"/a/./b", false},
		{"/%2e%2e/%2fevil.com", false},
		{"https://grafana.example.com/%5cevil.com", false},
		{"/%5Cevil.com", false},
		{"/%0d%0aSet-Cookie:x=1", false},
		{"/x?q=%00", false},
		{"/x%7f", false},
		{"https://grafana.example.com:/", false},
		{"https://:443/", false},
		{"https://grafana.example.com%2eevil.example/", false},
		{"https://grafana.example.com", true},
		{"https://grafana.example.com?x=1", true},
		{"https://grafana.example.com/a.b/..c/d..", true},
		{"/x?next=//evil.com", true},
		{"/%2fevil.com", true},
		// Found by FuzzSafeReturn: net/url re-escapes this path from its
		// decoded form, "//%22", which leaves the origin.
		{"/%2F\"", false},
		{"https://grafana.example.com/%2Fevil.com\"", false},
		{"/a\"b", false},
	}
	for _, tc := range cases {
		got, ok := SafeReturn(tc.raw, allowed)
		if ok != tc.want {
			t.Errorf("SafeReturn(%q) ok = %v, want %v", tc.raw, ok, tc.want)
		}
		if ok && got != tc.raw {
			t.Errorf("SafeReturn(%q) = %q, want it unchanged", tc.raw, got)
		}
		if !ok && got != "" {
			t.Errorf("SafeReturn(%q) refused but returned %q", tc.raw, got)
		}
	}
	if _, ok := SafeReturn("https://grafana.example.com/", nil); ok {
		t.Errorf("SafeReturn with nil allowedHost accepted an absolute URL")
	}
}

// FuzzSafeReturn checks the invariant that matters: whatever SafeReturn
// accepts, a browser resolving it against the portal lands on an allowed
// host over https (or stays on the portal), and the path after the origin
// never starts with "//" or "/\", neither as written nor as the browser
// resolves it, so redirecting to the bare path cannot leave the origin.
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/", "//evil", `/\evil`, "https://evil", "https://gate.example.com/x", "javascript:x",
		"/%2f%2fevil", "https://a@gate.example.com", "https://gate.example.com//evil.com", "https://gate.example.com/.//evil",
		"/..//evil", "https://app.example.com?x", "https://gate.example.com:443/x"} {
		f.Add(s)
	}
	allowed := allowHosts("gate.example.com", "app.example.com")
	base, _ := url.Parse("https://gate.example.com/auth/start")
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := SafeReturn(raw, allowed)
		if !ok {
			if got != "" {
				t.Fatalf("SafeReturn(%q) refused but returned %q", raw, got)
			}
			return
		}
		for i := 0; i < len(got); i++ {
			if got[i] <= 0x20 || got[i] >= 0x7f || got[i] == '\\' {
				t.Fatalf("SafeReturn(%q) accepted byte %#x", raw, got[i])
			}
		}
		if strings.Contains(strings.ToLower(got), "%5c") {
			t.Fatalf("SafeReturn(%q) accepted an encoded backslash", raw)
		}
		ref, err := url.Parse(got)
		if err != nil {
			t.Fatalf("SafeReturn(%q) accepted an unparseable URL: %v", raw, err)
		}
		dst := base.ResolveReference(ref)
		if dst.Scheme != "https" || dst.User != nil || !allowed(strings.ToLower(dst.Host)) {
			t.Fatalf("SafeReturn(%q) = %q leads to %v", raw, got, dst)
		}
		for _, p := range []string{ref.EscapedPath(), dst.EscapedPath()} {
			if strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
				t.Fatalf("SafeReturn(%q) = %q: path %q after the origin", raw, got, p)
			}
		}
		// The portal redirects to the bare path (and query) of a URL on its
		// own host: resolved again, it must stay on that host.
		bare, err := url.Parse(dst.EscapedPath() + "?" + dst.RawQuery)
		if err != nil {
			t.Fatalf("bare path of %q: %v", got, err)
		}
		if again := dst.ResolveReference(bare); again.Host != dst.Host || again.Scheme != "https" {
			t.Fatalf("SafeReturn(%q) = %q: its bare path leads to %v", raw, got, again)
		}
	})
}
