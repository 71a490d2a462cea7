package authz

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// FuzzDecide checks that no input makes DecideRoute or DecideTarget panic,
// that an empty allow list never admits anyone, and that NeedMFA never
// comes with Allow.
func FuzzDecide(f *testing.F) {
	f.Add("a@example.com", "eng", "/admin/../x", "/admin", "eng", "example.com", int64(60), int64(3600), "ubuntu")
	f.Add("", "", "", "", "", "", int64(0), int64(0), "")
	f.Add("x@@y", "\x00", "\\..\\", "/", "g", "y", int64(-5), int64(-1), "root")
	f.Fuzz(func(t *testing.T, email, group, p, prefix, allowGroup, domain string, mfaAgoSec, maxAgeSec int64, login string) {
		s := Subject{Email: email, Groups: strings.Split(group, ","), MFAAt: now.Add(-time.Duration(mfaAgoSec) * time.Second)}
		maxAge := time.Duration(maxAgeSec) * time.Second
		full := config.Allow{Groups: []string{allowGroup}, Emails: []string{email}, EmailDomains: []string{domain}}

		// Empty allow on the route and on the rule: never allowed.
		r := &config.Route{Name: "r", Paths: []config.PathRule{{Prefix: prefix}}}
		if d := DecideRoute(s, r, maxAge, p, now); d.Allow || d.NeedMFA {
			t.Fatalf("empty allow admitted: %+v", d)
		}
		// Generous route allow but an empty rule covering the path: denied.
		r = &config.Route{Name: "r", Allow: full, Paths: []config.PathRule{{Prefix: "/"}}}
		if d := DecideRoute(s, r, maxAge, p, now); d.Allow || d.NeedMFA {
			t.Fatalf("empty root rule admitted: %+v", d)
		}
		// Arbitrary rule: no panic, NeedMFA implies deny.
		r = &config.Route{Name: "r", Allow: full, Paths: []config.PathRule{{Prefix: prefix, Allow: config.Allow{Groups: []string{allowGroup}}}}}
		if d := DecideRoute(s, r, maxAge, p, now); d.Allow && d.NeedMFA {
			t.Fatalf("allow with NeedMFA: %+v", d)
		}
		tg := &config.Target{Name: "t", Logins: []string{login}}
		if d := DecideTarget(s, tg, login, maxAge, now); d.Allow || d.NeedMFA {
			t.Fatalf("empty target allow admitted: %+v", d)
		}
		tg.Allow = full
		if d := DecideTarget(s, tg, login, maxAge, now); d.Allow && (d.NeedMFA || login == "") {
			t.Fatalf("bad target allow: %+v", d)
		}
		if Member(s, config.Allow{}) {
			t.Fatal("Member of empty allow")
		}
	})
}
