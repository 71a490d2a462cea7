package sshgw

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/config"
)

func TestParseUser(t *testing.T) {
	tests := []struct {
		in            string
		login, target string
		err           error
	}{
		{"ubuntu@prod-db", "ubuntu", "prod-db", nil},
		{"_svc.deploy-1@web-2", "_svc.deploy-1", "web-2", nil},
		{"alice", "alice", "", nil},
		{"Alice.Smith", "Alice.Smith", "", nil}, // a local user name, list mode
		{"alice@example.com@prod", "", "", errUserLogin},
		{"", "", "", errUserEmpty},
		{"@prod", "", "", errUserNoLogin},
		{"ubuntu@", "", "", errUserNoTarget},
		{"ubuntu@@prod", "", "", errUserDoubleAt},
		{"@@", "", "", errUserDoubleAt},
		{"ub untu@prod", "", "", errUserChar},
		{"ubuntu@prod\n", "", "", errUserChar},
		{"ubuntu\x00@prod", "", "", errUserChar},
		{"ubuntu\x1b[2J@prod", "", "", errUserChar},
		{"übuntu@prod", "", "", errUserChar},
		{"ubuntu@prod\x7f", "", "", errUserChar},
		{"Ubuntu@prod", "", "", errUserLogin},
		{"1ubuntu@prod", "", "", errUserLogin},
		{strings.Repeat("a", 33) + "@prod", "", "", errUserLogin},
		{"ubuntu@Prod", "", "", errUserTarget},
		{"ubuntu@prod.example.com", "", "", errUserTarget},
		{"ubuntu@-prod", "", "", errUserTarget},
		{"ubuntu@prod:22", "", "", errUserTarget},
		{strings.Repeat("a", 257), "", "", errUserLong},
		{strings.Repeat("a", 10<<10) + "@prod", "", "", errUserLong},
		{strings.Repeat("a", 256), strings.Repeat("a", 256), "", nil},
	}
	for _, tc := range tests {
		login, target, err := ParseUser(tc.in)
		if login != tc.login || target != tc.target || err != tc.err {
			t.Errorf("ParseUser(%q) = %q, %q, %v; want %q, %q, %v", trunc(tc.in), login, target, err, tc.login, tc.target, tc.err)
		}
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// FuzzParseUser checks ParseUser's contract on any input: an accepted name
// is printable ASCII of at most 256 bytes and splits back into itself; a
// refusal never echoes the input.
func FuzzParseUser(f *testing.F) {
	for _, s := range []string{"ubuntu@prod", "alice", "a@b@c", "@@", "", "x\x00@y", "ü@p", strings.Repeat("a@", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		login, target, err := ParseUser(s)
		if err != nil {
			if login != "" || target != "" {
				t.Fatalf("ParseUser(%q) returned parts with error %v", s, err)
			}
			if len(s) > 3 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q echoes the input", err)
			}
			return
		}
		if len(s) == 0 || len(s) > maxUserLen || !utf8.ValidString(s) {
			t.Fatalf("ParseUser(%q) accepted a bad length or encoding", s)
		}
		for i := 0; i < len(s); i++ {
			if s[i] <= ' ' || s[i] >= 0x7f {
				t.Fatalf("ParseUser(%q) accepted byte %#x", s, s[i])
			}
		}
		if target == "" {
			if login != s || strings.Contains(s, "@") {
				t.Fatalf("ParseUser(%q) = %q, %q in list mode", s, login, target)
			}
			return
		}
		if login+"@"+target != s || strings.Contains(target, "@") {
			t.Fatalf("ParseUser(%q) = %q, %q does not split at the last @", s, login, target)
		}
		if !validLogin(login) || !config.ValidTargetName(target) {
			t.Fatalf("ParseUser(%q) accepted login %q target %q", s, login, target)
		}
	})
}
