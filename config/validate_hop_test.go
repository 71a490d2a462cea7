package config

import (
	"errors"
	"strings"
	"testing"
)

// TestLoadHopKeys edits the valid config's route with the hop keys and
// checks each refusal's path, line and message, and that good values load.
func TestLoadHopKeys(t *testing.T) {
	valid := mustRead(t, "testdata/valid.yaml")
	const anchor = "    mfa_max_age: 1h\n"
	tests := []struct {
		name      string
		add       string // lines added after the route's mfa_max_age (line 25)
		wantPath  string
		wantLine  int
		wantInMsg string // "" means: loads
	}{
		{"good keys", "    allow_encoded_slashes: true\n    websocket_origins: [\"https://grafana.example.com:8443\"]\n    strip_headers: [X-Legacy-User]\n    identity_headers: {X-WEBAUTH-USER: email, X-Auth-Request-Groups: groups, X-User: user, X-Short: name}\n", "", 0, ""},
		{"encoded slashes with paths", "    allow_encoded_slashes: true\n    paths: [{prefix: /admin, allow: {groups: [ops]}}]\n", "routes[0].paths", 27, "allow_encoded_slashes"},
		{"origin http", "    websocket_origins: [\"http://grafana.example.com\"]\n", "routes[0].websocket_origins[0]", 26, "https origin"},
		{"origin with path", "    websocket_origins: [\"https://grafana.example.com/\"]\n", "routes[0].websocket_origins[0]", 26, "https origin"},
		{"origin upper case", "    websocket_origins: [\"https://Grafana.example.com\"]\n", "routes[0].websocket_origins[0]", 26, "https origin"},
		{"strip header not a token", "    strip_headers: [\"X Bad\"]\n", "routes[0].strip_headers[0]", 26, "not a valid header name"},
		{"identity field unknown", "    identity_headers: {X-WEBAUTH-USER: password}\n", "routes[0].identity_headers", 26, "must be one of email, user, groups, name"},
		{"identity header not a token", "    identity_headers: {\"X:User\": email}\n", "routes[0].identity_headers", 26, "not a valid header name"},
		{"identity header twice", "    identity_headers: {X-User: email, x_user: user}\n", "routes[0].identity_headers", 26, "name the same header"},
		{"identity header gatehouse", "    identity_headers: {X-Gatehouse-User: name}\n", "routes[0].identity_headers", 26, "set by Gatehouse itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(valid, anchor) {
				t.Fatalf("anchor %q not in valid.yaml", anchor)
			}
			doc := strings.Replace(valid, anchor, anchor+tt.add, 1)
			c, err := Load([]byte(doc))
			if tt.wantInMsg == "" {
				if err != nil {
					t.Fatalf("Load = %v, want success", err)
				}
				r := c.Routes[0]
				if !r.AllowEncodedSlashes || len(r.WebSocketOrigins) != 1 || r.StripHeaders[0] != "X-Legacy-User" || r.IdentityHeaders["X-WEBAUTH-USER"] != IdentityEmail {
					t.Errorf("route = %+v", r)
				}
				return
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Load = %v, want Problems", err)
			}
			for _, p := range ps {
				if p.Path == tt.wantPath && strings.Contains(p.Msg, tt.wantInMsg) {
					if p.Line != tt.wantLine {
						t.Errorf("problem %q at line %d, want %d", p, p.Line, tt.wantLine)
					}
					return
				}
			}
			t.Errorf("problems = %q, want one at %s containing %q", ps.Error(), tt.wantPath, tt.wantInMsg)
		})
	}
}

func TestValidHeaderName(t *testing.T) {
	for s, want := range map[string]bool{"X-Webauth-User": true, "x_user": true, "": false, "X User": false, "X:U": false, "é": false} {
		if got := ValidHeaderName(s); got != want {
			t.Errorf("ValidHeaderName(%q) = %v, want %v", s, got, want)
		}
	}
}
