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
// host over https (or stays on the portal).
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/", "//evil", `/\evil`, "https://evil", "https://gate.example.com/x", "javascript:x", "/%2f%2fevil", "https://a@gate.example.com"} {
		f.Add(s)
	}
	allowed := allowHosts("gate.example.com", "app.example.com")
	base, _ := url.Parse("https://gate.example.com/auth/start")
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := SafeReturn(raw, allowed)
		if !ok {
			return
		}
		for i := 0; i < len(got); i++ {
			if got[i] <= 0x20 || got[i] >= 0x7f || got[i] == '\\' {
				t.Fatalf("SafeReturn(%q) accepted byte %#x", raw, got[i])
			}
		}
		ref, err := url.Parse(got)
		if err != nil {
			t.Fatalf("SafeReturn(%q) accepted an unparseable URL: %v", raw, err)
		}
		dst := base.ResolveReference(ref)
		if dst.Scheme != "https" || dst.User != nil || !allowed(strings.ToLower(dst.Host)) {
			t.Fatalf("SafeReturn(%q) = %q leads to %v", raw, got, dst)
		}
	})
}
