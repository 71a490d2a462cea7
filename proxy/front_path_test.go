package proxy

import (
	"net/http"
	"testing"

	"github.com/gatehouse-dev/gatehouse/authz"
)

// TestHostilePaths is issue 12 defect 2 through front, gate and hop:
// every path is refused (400 by the front, 403 by the gate) or reaches the
// upstream in its canonical form, the one the gate judged.
func TestHostilePaths(t *testing.T) {
	seen := &upSeen{}
	s := startHostile(t, seen, nil)
	tests := []struct {
		host, path string
		want       int
		wantURI    string // what the upstream receives when want is 200
	}{
		// Refused by the path rule on the canonical path.
		{"app.test", "/admin", 403, ""},
		{"app.test", "/ADMIN", 403, ""},
		{"app.test", "//admin", 403, ""},
		{"app.test", "/%61dmin", 403, ""},
		{"app.test", "/admin/x?y=1", 403, ""},
		// No safe canonical form: 400 on every route.
		{"app.test", "/x/../admin", 400, ""},
		{"app.test", "/x/..;/admin", 400, ""},
		{"app.test", "/admin%00", 400, ""},
		{"app.test", "/admin%20", 400, ""},
		{"app.test", "/admin%09", 400, ""},
		{"app.test", "/admin.", 400, ""},
		{"app.test", "/admin%2f..%2fx", 400, ""},
		{"app.test", "/admin%2e%2e%2f", 400, ""},
		{"app.test", "/admin/%2e%2e/x", 400, ""},
		{"app.test", "/p%5cadmin", 400, ""},
		{"app.test", "/p%252e", 400, ""},
		{"app.test", "/%c0%af", 400, ""},
		{"app.test", "/a%2Fb", 400, ""},
		{"gate.test", "/x/../auth", 400, ""},
		// An encoded ? has two readings (an upstream that decodes and
		// re-parses sees a query): refused.
		{"app.test", "/p/a%3Fb", 400, ""},
		// Admitted: the upstream receives exactly the canonical path.
		{"app.test", "/p/x", 200, "/p/x"},
		{"app.test", "//p//x/", 200, "/p/x/"},
		{"app.test", "/%70/%7e%41", 200, "/p/~A"},
		{"app.test", "/p/caf%c3%a9?q=%2F", 200, "/p/caf%C3%A9?q=%2F"},
		{"app.test", "/p/a%20b", 200, "/p/a%20b"},
		// allow_encoded_slashes: %2F kept, everything else still refused.
		{"noapp.test", "/api/group%2fproject/x", 200, "/api/group%2Fproject/x"},
		{"noapp.test", "/api/%61%2Fb", 200, "/api/a%2Fb"},
		{"noapp.test", "/api/a%2F..%2Fb", 400, ""},
		{"noapp.test", "/api/%2Fx", 400, ""},
		{"noapp.test", "/api/x%2F", 400, ""},
		{"noapp.test", "/api/a;b%2Fc", 400, ""},
		{"noapp.test", "/api/../x", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.host+tt.path, func(t *testing.T) {
			before := seen.count()
			resp, _ := frontRawRequest(t, s.f, tt.host, "GET "+tt.path+" HTTP/1.1\r\nHost: "+tt.host+"\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want != http.StatusOK {
				if seen.count() != before {
					t.Errorf("upstream received %q for a refused request", seen.last(t).RequestURI)
				}
				if tt.want == http.StatusBadRequest && !s.audit.has("http.refused", "path cannot be canonicalised") {
					t.Error("no audit event for the refusal")
				}
				return
			}
			in := seen.last(t)
			if in.RequestURI != tt.wantURI {
				t.Errorf("upstream RequestURI = %q, want %q", in.RequestURI, tt.wantURI)
			}
			// The forwarded path is a fixed point: what was judged.
			if c, err := authz.CanonicalPath(in.URL.EscapedPath()); tt.host == "app.test" && (err != nil || c != in.URL.EscapedPath()) {
				t.Errorf("forwarded path %q is not canonical (%q, %v)", in.URL.EscapedPath(), c, err)
			}
		})
	}
}

func TestCanonicalKeepingSlashes(t *testing.T) {
	for raw, want := range map[string]string{
		"/":                "/",
		"/a%2fb":           "/a%2Fb",
		"//a%2Fb//c/":      "/a%2Fb/c/",
		"/%7e%2F%41":       "/~%2FA",
		"/a%2F%2Fb":        "",
		"/a%2F.":           "",
		"/a%2F%2e%2e%2Fb":  "",
		"/a%252F":          "",
		"relative%2Fpath":  "",
		"/a%2F%00":         "",
		"/a%5C%2Fb":        "",
		"/x%2F%c0%af":      "",
		"/tail%2F":         "",
		"/%2Fhead":         "",
		"/only/plain/path": "/only/plain/path",
	} {
		got, err := canonicalKeepingSlashes(raw)
		if want == "" {
			if err == nil {
				t.Errorf("canonicalKeepingSlashes(%q) = %q, want refusal", raw, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("canonicalKeepingSlashes(%q) = %q, %v; want %q", raw, got, err, want)
		}
		if again, err := canonicalKeepingSlashes(got); err != nil || again != got {
			t.Errorf("not a fixed point: %q -> %q, %v", got, again, err)
		}
	}
}
