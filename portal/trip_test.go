package portal

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/identity"
)

// hostileReturns are return URLs that must never lead off the configured
// origins (issue 12 defect 3). Each ends on the portal's home.
var hostileReturns = []string{
	"//evil.com",
	"https://gate.test//evil.com",
	"https://app.test//evil.com",
	"https://GATE.test//evil.com",
	`/\evil.com`,
	"/%5cevil.com",
	"/%5Cevil.com",
	"https://evil.com",
	"https://gate.test@evil.com",
	"https://gate.test@evil.com/",
	"https://app.test@evil.com/x",
	"javascript:alert(1)",
	"JavaScript://gate.test/%0aalert(1)",
	"/a\r\nSet-Cookie: x=y",
	"/a%0d%0aSet-Cookie:%20x=y",
	"https://app.test/a%0d%0aLocation:%20https://evil.com",
	"https://gate.test/./%2fevil.com",
	"https://app.test/%2e%2e//evil.com",
	"http://gate.test/",
	"data:text/html,hi",
}

// TestReturnURLsHostile sends a signed-in person to every page that takes
// rd with hostile values: each ends on the portal's home with a redirect,
// never an error page or another origin.
func TestReturnURLsHostile(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	key := newPTKey()
	e.login(c, key, "https://gate.test/auth/login", "ann@example.com", "eng")
	for _, rd := range hostileReturns {
		for _, bind := range []string{"", "&bind=" + identity.HandoffBinding("n")} {
			for _, page := range []string{"/auth/login", "/auth/verify"} {
				u := "https://gate.test" + page + "?rd=" + url.QueryEscape(rd) + bind
				res := e.get(c, u)
				if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/" {
					t.Errorf("GET %s?rd=%q%s = %d to %q, want 302 to /", page, rd, bind, res.StatusCode, res.Header.Get("Location"))
				}
			}
			// The step-up page carries only the home to its finish
			// endpoint, which then answers the home.
			pg := e.get(c, "https://gate.test/auth/stepup?rd="+url.QueryEscape(rd)+bind)
			if finish := dataAttr(pg.body, "assert-finish"); pg.StatusCode != http.StatusOK || finish != "/auth/webauthn/assert/finish" {
				t.Errorf("stepup?rd=%q%s = %d, finish endpoint %q", rd, bind, pg.StatusCode, finish)
				continue
			}
			if to := e.redirectOf(e.ceremony(c, pg, key)); to != "/" {
				t.Errorf("after a step-up with rd=%q%s the script goes to %q, want /", rd, bind, to)
			}
		}
	}
	// After SSO the same holds for anyone: the login returns home.
	for _, rd := range hostileReturns {
		res := e.signIn(e.client(), "https://gate.test/auth/login?rd="+url.QueryEscape(rd), "bob@example.com", "eng")
		if loc := res.Header.Get("Location"); res.StatusCode != http.StatusFound || loc != "/auth/verify" {
			t.Errorf("callback after login?rd=%q = %d to %q, want /auth/verify", rd, res.StatusCode, loc)
		}
	}
}

// TestHandoffBoundToBrowser is issue 12 defect 4: a handoff URL works only
// in the browser whose app gate started the trip, and only once.
func TestHandoffBoundToBrowser(t *testing.T) {
	e := newPTEnv(t)
	// The victim is signed in to the app as herself.
	victim := e.client()
	e.echo(e.login(victim, newPTKey(), "https://app.test/", "vic@example.com", "eng"))
	victimCookie := e.cookie(victim, "app.test")

	// The attacker signs in from his own browser and stops at the handoff.
	attacker := e.client()
	res := e.signIn(attacker, "https://app.test/inbox", "mallory@example.com", "eng")
	page := e.follow(attacker, ptAbs(res.Request.URL, res.Header.Get("Location")))
	handoff := e.redirectOf(e.ceremony(attacker, page, newPTKey()))
	if !strings.HasPrefix(handoff, "https://app.test/.gatehouse/handoff?code=") {
		t.Fatalf("after sign-in the script goes to %q, want the app's handoff", handoff)
	}

	// Opened in the victim's browser, it signs nothing in and leaves her
	// session alone.
	res = e.get(victim, handoff)
	if res.StatusCode == http.StatusFound && res.Header.Get("Location") == "/inbox" {
		t.Fatalf("handoff in another browser = 302 to %q: signed in", res.Header.Get("Location"))
	}
	for _, ck := range res.Cookies() {
		if ck.Name == SessionCookie {
			t.Errorf("handoff in another browser set the session cookie %s", ck)
		}
	}
	if got := e.cookie(victim, "app.test"); got != victimCookie {
		t.Errorf("victim's app cookie changed")
	}
	if who := e.echo(e.get(victim, "https://app.test/me")).Headers["X-Gatehouse-User"]; len(who) != 1 || who[0] != "vic@example.com" {
		t.Errorf("victim reaches the app as %q, want vic@example.com", who)
	}
	if len(e.audit.find(identity.EventHandoff, audit.Deny)) == 0 {
		t.Errorf("refused handoff not audited")
	}

	// The code was burnt: the attacker's own browser cannot use it now
	// either. That is the trade-off TestHandoffBoundToBrowser accepts (see
	// App.handoff): a code that survived a refusal could be raced for.
	res = e.get(attacker, handoff)
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/" {
		t.Errorf("burnt code in its own browser = %d to %q, want 302 to / (start again)", res.StatusCode, res.Header.Get("Location"))
	}
	if e.cookie(attacker, "app.test") != "" {
		t.Errorf("burnt code signed its own browser in")
	}
	// Starting again works: the portal session is still there.
	if who := e.echo(e.follow(attacker, "https://app.test/inbox")).Headers["X-Gatehouse-User"]; len(who) != 1 || who[0] != "mallory@example.com" {
		t.Errorf("after starting again the app sees %q", who)
	}
	if jarCookie(attacker, "app.test", tripCookie) != "" {
		t.Errorf("the trip cookie outlived its handoff")
	}
}

// TestHandoffWithoutBindingGoesThroughTheGate: a portal link to an app URL
// that no gate made (no binding) goes to the app itself, whose gate starts
// a bound trip, instead of minting an unbound code.
func TestHandoffWithoutBindingGoesThroughTheGate(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	e.login(c, newPTKey(), "https://gate.test/auth/login", "ann@example.com", "eng")
	res := e.get(c, "https://gate.test/auth/login?rd="+url.QueryEscape("https://app.test/x?y=1"))
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "https://app.test/x?y=1" {
		t.Fatalf("login without binding = %d to %q, want the app URL", res.StatusCode, res.Header.Get("Location"))
	}
	if echo := e.echo(e.follow(c, "https://app.test/x?y=1")); echo.URI != "/x?y=1" {
		t.Errorf("upstream saw %q", echo.URI)
	}
	// A malformed binding counts as none.
	res = e.get(c, "https://gate.test/auth/login?rd="+url.QueryEscape("https://app.test/")+"&bind=ZZ")
	if res.Header.Get("Location") != "https://app.test/" {
		t.Errorf("login with a malformed binding = %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
}
