package portal

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		name, origin, site string
		want               bool
	}{
		{"same origin", "https://gate.test", "", true},
		{"same origin, other case", "https://GATE.test", "same-origin", true},
		{"other site", "https://evil.example", "cross-site", false},
		{"app host (same site, other origin)", "https://app.test", "same-site", false},
		{"other port", "https://gate.test:8443", "same-site", false},
		{"plain http", "http://gate.test", "", false},
		{"null from a no-referrer form", "null", "same-origin", true},
		{"null from a sandboxed frame elsewhere", "null", "cross-site", false},
		{"null without fetch metadata", "null", "", false},
		{"no origin, same-origin fetch metadata", "", "same-origin", true},
		{"no origin, no metadata", "", "", false},
		{"no origin, none", "", "none", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "https://gate.test/auth/logout", strings.NewReader(""))
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.site != "" {
				r.Header.Set("Sec-Fetch-Site", tt.site)
			}
			if got := sameOrigin(r, "https://gate.test"); got != tt.want {
				t.Errorf("sameOrigin(Origin %q, Sec-Fetch-Site %q) = %v, want %v", tt.origin, tt.site, got, tt.want)
			}
		})
	}
}

func TestCSRFToken(t *testing.T) {
	a, b := csrfToken("session-a"), csrfToken("session-b")
	if a == b || a == "" {
		t.Fatalf("csrfToken gives %q and %q", a, b)
	}
	tests := []struct {
		sid, tok string
		want     bool
	}{
		{"session-a", a, true},
		{"session-a", b, false},
		{"session-a", "", false},
		{"", csrfToken(""), false},
		{"session-a", a + "x", false},
		{"session-a", strings.Repeat("a", 500), false},
	}
	for _, tt := range tests {
		if got := csrfValid(tt.sid, tt.tok); got != tt.want {
			t.Errorf("csrfValid(%q, %q) = %v, want %v", tt.sid, tt.tok, got, tt.want)
		}
	}
}
