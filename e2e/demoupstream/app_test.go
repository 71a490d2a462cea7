package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// issuerFixture is a fake Gatehouse: a JWKS endpoint and a signing key.
type issuerFixture struct {
	url    string
	signer jose.Signer
}

func newIssuer(t *testing.T) *issuerFixture {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: key, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk.Public()}})
	}))
	t.Cleanup(srv.Close)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jwk}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	return &issuerFixture{url: srv.URL, signer: signer}
}

func (f *issuerFixture) token(t *testing.T, iss, aud string, exp time.Duration) string {
	t.Helper()
	now := time.Now()
	c := assertionClaims{
		Claims: jwt.Claims{Issuer: iss, Audience: jwt.Audience{aud}, Subject: "ann@example.com",
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(exp))},
		Email: "ann@example.com", Groups: []string{"engineering"}, MFAAt: now.Unix(),
	}
	s, err := jwt.Signed(f.signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPage(t *testing.T) {
	iss := newIssuer(t)
	other := newIssuer(t)
	a := &app{verifier: newVerifier(iss.url, "demo-app", http.DefaultClient), logger: slog.New(slog.DiscardHandler)}
	tests := []struct {
		name  string
		token string
		want  []string
	}{
		{"verified", iss.token(t, iss.url, "demo-app", 2*time.Minute),
			[]string{"Hello, <strong>ann@example.com</strong>", `<td id="groups">engineering </td>`, `<td id="query">x=1&amp;y=2</td>`}},
		{"no assertion", "", []string{"did not come through Gatehouse"}},
		{"wrong audience", iss.token(t, iss.url, "other-app", 2*time.Minute), []string{"did NOT verify", "audience"}},
		{"wrong issuer", iss.token(t, "https://evil.example", "demo-app", 2*time.Minute), []string{"did NOT verify", "issuer"}},
		{"expired", iss.token(t, iss.url, "demo-app", -time.Minute), []string{"did NOT verify", "expired"}},
		{"too long-lived", iss.token(t, iss.url, "demo-app", time.Hour), []string{"did NOT verify", "more than 5 minutes"}},
		{"signed by another key with the same kid", other.token(t, iss.url, "demo-app", 2*time.Minute), []string{"did NOT verify", "signature"}},
		{"garbage", "not.a.jwt", []string{"did NOT verify"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/dash?x=1&y=2", nil)
			r.Header.Set("X-Gatehouse-User", "ann@example.com")
			r.Header.Set("Cookie", "__Host-gatehouse=SECRETVALUE")
			if tt.token != "" {
				r.Header.Set("X-Gatehouse-Jwt-Assertion", tt.token)
			}
			w := httptest.NewRecorder()
			a.ServeHTTP(w, r)
			body := w.Body.String()
			for _, s := range tt.want {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q:\n%s", s, body)
				}
			}
			if strings.Contains(body, "SECRETVALUE") {
				t.Errorf("page shows a cookie value")
			}
			if tt.name != "verified" && strings.Contains(body, "Hello,") {
				t.Errorf("unverified request greeted as verified")
			}
		})
	}
}

func TestWebSocketEcho(t *testing.T) {
	srv := httptest.NewServer(&app{logger: slog.New(slog.DiscardHandler)})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("ping 1")); err != nil {
		t.Fatal(err)
	}
	typ, msg, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || string(msg) != "ping 1" {
		t.Fatalf("echo = %v %q %v, want text %q", typ, msg, err, "ping 1")
	}
}

func TestListenMustBeLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "example.com:80"} {
		if err := run([]string{"-listen", addr}, io.Discard); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("run(-listen %s) = %v, want a loopback error", addr, err)
		}
	}
}
