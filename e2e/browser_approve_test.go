package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/e2e/harness"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/portal"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
	"github.com/gatehouse-dev/gatehouse/store"
)

// TestBrowserApproval drives the SSH approval page in real Chromium: the
// link from the terminal, sign-in with Dex, enrolment, the page showing
// where the connection comes from (never the code), a wrong code refused,
// the typed code and the approving assertion. The portal runs in-process (portal.NewWeb over a real store
// and audit log, behind proxy.SecurityHeaders as the front serves it) so
// the test can create the approval the SSH gateway would.
func TestBrowserApproval(t *testing.T) {
	ca := harness.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	portal := "https://gate.test:" + port
	dex := harness.StartDex(t, harness.DexOptions{
		CA:    ca,
		Users: []harness.DexUser{{Email: "ann@example.com", Password: "pw-ann", Groups: []string{"sre"}}},
		Clients: []harness.DexClient{{ID: "gatehouse", Secret: "approval-test-secret",
			RedirectURIs: []string{portal + "/auth/callback"}}},
	})
	dir := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	auditPath := filepath.Join(dir, "audit.log")
	al, err := audit.New(auditPath, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		PublicURL: portal,
		SSO: config.SSO{Issuer: dex.Issuer, ClientID: "gatehouse", ClientSecretFile: dex.SecretFile(t, "gatehouse"),
			CARoots: []string{dex.CAFile}},
		MFA: config.MFA{MaxAge: config.Duration(12 * time.Hour)},
	}
	cfg.ApplyDefaults() // as config.Load does: the doors take defaults resolved
	ctx := t.Context()
	w := buildApprovalPortal(t, cfg, st, al)
	srv := httptest.NewUnstartedServer(proxy.SecurityHeaders(w.Portal))
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.TLSCertificate(t, "gate.test")}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	// The SSH gateway's side: an unknown key asks for approval.
	approvals := mustApprovals(t, st, al, portal)
	req := identity.ApprovalRequest{SessionID: "ssh-1", SessionHash: []byte("exchange hash"),
		KeyFingerprint: "SHA256:Zm9vYmFyYmF6cXV4", Target: "prod-db", Login: "postgres", Source: "203.0.113.9:40022"}
	ap, err := approvals.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ap.URL, portal+"/approve/") {
		t.Fatalf("approval URL %q is not on the portal", ap.URL)
	}

	b := harness.NewBrowser(t, harness.BrowserOptions{CA: ca})
	tab := b.NewTab(t)
	tab.Navigate(ap.URL)
	tab.WaitURL("Dex's login page", func(u string) bool { return strings.Contains(u, "/dex/") })
	tab.DexLogin("ann@example.com", "pw-ann")
	tab.WaitURLPrefix(portal + "/auth/verify")
	tab.Click("#webauthn-start") // first sign-in: enrol the key
	tab.WaitURLPrefix(ap.URL)
	tab.WaitText("Approve an SSH connection")
	// Number matching: the page shows where the connection comes from and
	// asks for the code; it never shows the code.
	text := tab.Text()
	for _, want := range []string{"prod-db", "postgres", "SHA256:Zm9vYmFyYmF6cXV4", "203.0.113.9:40022"} {
		if !strings.Contains(text, want) {
			tab.Fatalf("approval page lacks %q", want)
		}
	}
	if strings.Contains(text, ap.Code) || strings.Contains(text, strings.ReplaceAll(ap.Code, "-", "")) {
		tab.Fatalf("approval page shows the verification code %q", ap.Code)
	}
	// A wrong code (after the key touch) is refused with the attempts
	// left; nothing is approved.
	wrong := "AAAA-AAAA"
	if wrong == ap.Code {
		wrong = "BBBB-BBBB"
	}
	tab.Type("#code", wrong)
	tab.Click("#approve")
	tab.WaitText("not the code your terminal shows")
	tab.WaitText("2 attempts left")
	if got, err := approvals.Get(ctx, ap.ID); err != nil || got.State != identity.ApprovalPending || got.CodeAttemptsLeft != 2 {
		t.Fatalf("approval after a wrong code: %+v, %v; want pending with 2 attempts left", got, err)
	}
	// The code the terminal shows approves.
	tab.Type("#code", ap.Code)
	tab.Click("#approve") // asserts with the key, then posts
	tab.WaitText("Connection approved")

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := approvals.Wait(wctx, ap.ID, req)
	if err != nil || !got.Approved || got.Email != "ann@example.com" || got.MFAAt.IsZero() {
		t.Fatalf("Wait = %+v, %v; want approved by ann with an MFA time", got, err)
	}
	// Single use: the link is dead.
	tab.Navigate(ap.URL)
	tab.WaitText("Approval expired")

	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := audit.Verify(f); err != nil || n == 0 {
		t.Errorf("audit.Verify = %d lines, %v", n, err)
	}
	raw, _ := os.ReadFile(auditPath)
	for _, want := range []string{`"type":"sso.login"`, `"type":"webauthn.enroll"`, `"type":"webauthn.assert"`, `"type":"approval"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
}

// buildApprovalPortal builds the portal the way serve does (the identity
// components over one store, portal.NewWeb), without routes.
func buildApprovalPortal(t *testing.T, cfg *config.Config, st store.Store, al *audit.Log) *portal.Web {
	t.Helper()
	d := identity.Deps{Store: st, Audit: al, Secrets: secretstest.New(t)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	sessions, err := identity.NewSessions(d, identity.SessionOptions{})
	must(err)
	users, err := identity.NewUsers(d)
	must(err)
	invites, err := identity.NewInvites(d)
	must(err)
	limiter, err := identity.NewLimiter(d)
	must(err)
	codec, err := identity.NewCodec(t.Context(), d, 0)
	must(err)
	wa, err := identity.NewWebAuthn(d, identity.WebAuthnConfig{PublicURL: cfg.PublicURL, Enrollment: cfg.WebAuthn.Enrollment}, users, sessions, invites)
	must(err)
	client, err := identity.SSOHTTPClient(cfg.SSO)
	must(err)
	oidc, err := identity.NewOIDC(t.Context(), d, cfg.SSO, cfg.PublicURL+"/auth/callback", client)
	must(err)
	w, err := portal.NewWeb(portal.WebConfig{Config: cfg, OIDC: oidc, Sessions: sessions, WebAuthn: wa,
		Approvals: mustApprovals(t, st, al, cfg.PublicURL), Limiter: limiter, Codec: codec, Audit: al})
	must(err)
	return w
}

func mustApprovals(t *testing.T, st store.Store, al *audit.Log, publicURL string) *identity.Approvals {
	t.Helper()
	a, err := identity.NewApprovals(identity.Deps{Store: st, Audit: al}, publicURL)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
