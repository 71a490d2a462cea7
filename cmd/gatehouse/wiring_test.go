package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
	"github.com/gatehouse-dev/gatehouse/store"
)

// TestBuildWebIdPDown builds (through the wiring serve uses) the browser side against an issuer nobody
// answers for: the build succeeds, app routes still send people to sign
// in, and the sign-in answers a plain 503 instead of a redirect.
func TestBuildWebIdPDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "https://" + ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := &config.Config{
		PublicURL: "https://gate.test",
		MFA:       config.MFA{MaxAge: config.Duration(12 * time.Hour)},
		Routes: []config.Route{{Name: "app", Host: "app.test", Upstream: "http://127.0.0.1:9",
			Allow: config.Allow{Groups: []string{"eng"}}}},
		SSO: config.SSO{Issuer: issuer, ClientID: "gatehouse", ClientSecretFile: secret},
	}
	cfg.ApplyDefaults() // as config.Load does: the doors take defaults resolved
	d := deps{cfg: cfg, store: st, audit: nopAudit{}, logger: slog.New(slog.DiscardHandler), secrets: secretstest.New(t)}
	if d.ident, err = newIdentity(t.Context(), d); err != nil {
		t.Fatalf("newIdentity with the IdP down: %v", err)
	}
	w, err := buildWeb(t.Context(), d)
	if err != nil {
		t.Fatalf("buildWeb with the IdP down: %v", err)
	}

	rec := httptest.NewRecorder()
	w.Apps["app.test"].ServeHTTP(rec, httptest.NewRequest("GET", "https://app.test/dash", nil))
	if loc := rec.Header().Get("Location"); rec.Code != http.StatusFound || !strings.HasPrefix(loc, "https://gate.test/auth/login?") {
		t.Errorf("app without a session = %d Location %q, want 302 to the portal's sign-in", rec.Code, loc)
	}

	for range 2 { // the second is answered from the retry back-off
		rec = httptest.NewRecorder()
		w.Portal.ServeHTTP(rec, httptest.NewRequest("GET", "https://gate.test/auth/login?rd=https%3A%2F%2Fapp.test%2Fdash", nil))
		body := rec.Body.String()
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Location") != "" ||
			!strings.Contains(body, "The identity provider is not answering; try again in a minute") {
			t.Errorf("/auth/login with the IdP down = %d Location %q body %q, want 503 with the notice",
				rec.Code, rec.Header().Get("Location"), body)
		}
		if got := rec.Header().Get("Retry-After"); got != "60" {
			t.Errorf("Retry-After = %q, want 60", got)
		}
		if strings.Contains(body, "s3cret") || strings.Contains(body, ln.Addr().String()) {
			t.Errorf("503 page leaks details: %q", body)
		}
	}
}

// nopAudit discards audit events.
type nopAudit struct{}

func (nopAudit) Log(context.Context, audit.Event) error { return nil }
