package portal

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
)

// upNopAudit discards audit events.
type upNopAudit struct{}

func (upNopAudit) Log(context.Context, audit.Event) error { return nil }

// upMinted is a real session for an app host, made through the same
// ceremonies a browser goes through (SSO login, WebAuthn enrolment with a
// virtual authenticator, handoff), with the sealed cookie value.
type upMinted struct {
	codec    *identity.Codec
	sessions *identity.Sessions
	cookie   string
	id       string
}

func upMint(tb testing.TB, publicURL, appHost string) *upMinted {
	tb.Helper()
	ctx := identity.WithClient(context.Background(), identity.Client{Source: "127.0.0.1", UserAgent: "bench"})
	d := identity.Deps{Store: upBolt(tb), Audit: upNopAudit{}, Logger: slog.New(slog.DiscardHandler), Secrets: secretstest.Shared(tb)}
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	sessions, err := identity.NewSessions(d, identity.SessionOptions{})
	must(err)
	users, err := identity.NewUsers(d)
	must(err)
	invites, err := identity.NewInvites(d)
	must(err)
	wa, err := identity.NewWebAuthn(d, identity.WebAuthnConfig{PublicURL: publicURL, Enrollment: config.EnrollmentOpen}, users, sessions, invites)
	must(err)
	codec, err := identity.NewCodec(ctx, d, 0)
	must(err)
	pub, _ := url.Parse(publicURL)
	s, err := sessions.Start(ctx, &identity.Login{Email: "alice@example.com", Subject: "a", Groups: []string{"eng"}, At: time.Now()}, pub.Hostname())
	must(err)
	cc, err := wa.BeginRegistration(ctx, s, "")
	must(err)
	ccJSON, _ := json.Marshal(cc)
	opts, err := virtualwebauthn.ParseAttestationOptions(string(ccJSON))
	must(err)
	resp := virtualwebauthn.CreateAttestationResponse(
		virtualwebauthn.RelyingParty{Name: "Gatehouse", ID: pub.Hostname(), Origin: publicURL},
		virtualwebauthn.NewAuthenticator(), virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, ptP256Key()), *opts)
	s, err = wa.FinishRegistration(ctx, s, "key", strings.NewReader(resp))
	must(err)
	nonce, err := identity.NewHandoffNonce()
	must(err)
	code, err := sessions.IssueBoundHandoff(ctx, s.ID, appHost, "/", identity.HandoffBinding(nonce))
	must(err)
	app, _, err := sessions.RedeemBoundHandoff(ctx, code, appHost, nonce)
	must(err)
	v, err := codec.Seal(SessionCookie, appHost, app.ID)
	must(err)
	return &upMinted{codec: codec, sessions: sessions, cookie: v, id: app.ID}
}

// BenchmarkSessionCheck is the uncached session check of an app host:
// open the sealed cookie (AES-GCM) and look the session up in the
// embedded store. The app gate does this once per cookie per cache TTL.
func BenchmarkSessionCheck(b *testing.B) {
	m := upMint(b, "https://gate.example.test", "app.example.test")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		id, err := m.codec.Open(SessionCookie, "app.example.test", m.cookie)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.sessions.Lookup(ctx, id, "app.example.test"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionCheckCached is the session check as every request after
// the first within the app gate's cache TTL pays it: read the cookie and
// find the verified session in the cache.
func BenchmarkSessionCheckCached(b *testing.B) {
	app, req := upBenchApp(b)
	now := time.Now()
	if _, ok, err := app.who(req, now); !ok || err != nil {
		b.Fatalf("who: %v %v", ok, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, _ := app.who(req, now); !ok {
			b.Fatal("session not found")
		}
	}
}

// upCannedUpstream answers every request with a small page after checking
// that the hop set the assertion and dropped Gatehouse's cookie.
type upCannedUpstream struct{ body string }

func (c upCannedUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(proxy.HeaderAssertion) == "" || r.Header.Get("Cookie") != "app=1" {
		http.Error(w, "bad request from the hop", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Length", strconv.Itoa(len(c.body)))
	_, _ = io.WriteString(w, c.body)
}

// upDiscardWriter is a minimal ResponseWriter.
type upDiscardWriter struct {
	h    http.Header
	code int
}

func (w *upDiscardWriter) Header() http.Header         { return w.h }
func (w *upDiscardWriter) WriteHeader(code int)        { w.code = code }
func (w *upDiscardWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkAppRequest is one allowed request through the app gate as a
// browser sends it: session cookie check (cached, as for every request
// after the first in a second), authz.DecideRoute, the cached JWT
// assertion, header and cookie rewriting and ReverseProxy, to a canned
// upstream on loopback. (Before the gate and the hop were split into
// portal and proxy, the upstream was an in-memory transport; the loopback
// round trip is now part of the measurement.)
func BenchmarkAppRequest(b *testing.B) {
	app, req := upBenchApp(b)
	w := &upDiscardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.code = 0
		app.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}

// upBenchApp is an app gate with a real minted session in front of a
// canned upstream, and a request carrying the session cookie.
func upBenchApp(b *testing.B) (*App, *http.Request) {
	m := upMint(b, "https://gate.example.test", "app.example.test")
	route := config.Route{Name: "app", Host: "app.example.test", Upstream: "http://127.0.0.1:9", Allow: config.Allow{Groups: []string{"eng"}}}
	canned := httptest.NewServer(upCannedUpstream{body: strings.Repeat("x", 132)})
	b.Cleanup(canned.Close)
	route.Upstream = canned.URL
	cfg := &config.Config{PublicURL: "https://gate.example.test", MFA: config.MFA{MaxAge: config.Duration(12 * time.Hour)}, Routes: []config.Route{route}}
	cfg.ApplyDefaults() // as config.Load does
	route = cfg.Routes[0]
	up, err := proxy.NewUpstream(route, upSigner(b, upBolt(b), time.Now), nil)
	if err != nil {
		b.Fatal(err)
	}
	app, err := NewApp(route, up, AppDeps{Config: cfg, Codec: m.codec, Sessions: m.sessions, Audit: upNopAudit{}})
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://app.example.test/api/dashboards?x=1", nil)
	req.Host = "app.example.test"
	req.RemoteAddr = "127.0.0.1:5555"
	req.Header.Set("Cookie", SessionCookie+"="+m.cookie+"; app=1")
	req.Header.Set("User-Agent", "wrk")
	req.Header.Set("Accept", "*/*")
	return app, req
}
