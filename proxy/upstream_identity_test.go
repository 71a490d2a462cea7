package proxy

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/config"
)

// TestHopIdentityHeaders: client-sent identity and URL-override headers
// never reach the upstream, whatever their case or "_" spelling; the
// route's strip_headers go too; identity_headers carry the admitted
// person, not the client's claim.
func TestHopIdentityHeaders(t *testing.T) {
	seen := &upSeen{}
	s := startHostile(t, seen, func(c *config.Config, _ *FrontConfig) {
		c.Routes[0].StripHeaders = []string{"X-Legacy-Login"}
		c.Routes[0].IdentityHeaders = map[string]string{
			"X-WEBAUTH-USER": config.IdentityEmail, "X-Auth-Request-Groups": config.IdentityGroups,
			"X-Forwarded-User": config.IdentityName, "Remote-User": config.IdentityUser,
		}
	})
	client := frontClient(s.f, selfSignedPool(t, s.f.dataDir), "app.test")
	req, _ := http.NewRequest(http.MethodGet, "https://app.test/p/x", nil)
	for _, k := range []string{
		"Remote-User", "remote_user", "X-Remote-User", "X-Auth-Request-User", "X-Auth-Request-Email", "x-auth-request-groups",
		"X-Auth-Request-Preferred-Username", "X-Auth-Request-Access-Token", "X-Forwarded-User", "X-Forwarded-Email",
		"X-Forwarded-Groups", "X-Forwarded-Preferred-Username", "X-Forwarded-Access-Token", "X-Webauth-User", "X_WEBAUTH_EMAIL",
		"X-Webauth-Name", "X-Original-Url", "X-Original-Uri", "X-Rewrite-Url", "X-Remote-Email", "X-Remote-Groups",
		"X-Authenticated-User", "X-Ms-Client-Principal-Name", "Cf-Access-Authenticated-User-Email", "OIDC_CLAIM_email",
		"X-Goog-Authenticated-User-Email", "X-Amzn-Oidc-Identity", "X-Pomerium-Claim-Email", "X-User", "Es-Security-Runas-User",
		"x-legacy-login", "X_Legacy_Login",
	} {
		req.Header[k] = []string{"root"}
	}
	req.Header.Set("X-App", "kept")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	in := seen.last(t)
	got := http.Header{}
	for k, v := range in.Header {
		switch k {
		case "Accept-Encoding", "User-Agent", HeaderAssertion, "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		default:
			got[k] = v
		}
	}
	want := http.Header{
		"X-Gatehouse-User": {"alice@example.com"}, "X-Gatehouse-Email": {"alice@example.com"}, "X-Gatehouse-Groups": {"eng,sre"},
		"X-Webauth-User": {"alice@example.com"}, "X-Auth-Request-Groups": {"eng,sre"}, "X-Forwarded-User": {"alice"},
		"Remote-User": {"alice@example.com"}, "X-App": {"kept"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("upstream headers (-want +got):\n%s", diff)
	}
}
