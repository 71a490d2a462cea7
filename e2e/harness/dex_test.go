package harness

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// TestDexGroupsInIDToken logs in to a real Dex with a plain HTTP client (no
// browser): the password form, the code, the token exchange, and a verified
// ID token whose email and groups claims are the static user's.
func TestDexGroupsInIDToken(t *testing.T) {
	const redirect = "https://client.test/callback"
	dex := StartDex(t, DexOptions{
		Users:   []DexUser{{Email: "ann@example.com", Password: "pw-ann", Groups: []string{"engineering", "sre"}}},
		Clients: []DexClient{{ID: "harness", Secret: "harness-secret", RedirectURIs: []string{redirect}}},
	})
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{
		Jar:       jar,
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: dex.CA.Pool()}},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirect) {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	defer hc.CloseIdleConnections()

	// The authorization request lands on the password form.
	resp, err := hc.Get(dex.AuthURL("harness", redirect, "st4te"))
	if err != nil {
		t.Fatalf("GET auth URL: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `id="login"`) || !strings.Contains(string(body), `id="password"`) {
		t.Fatalf("auth page has no login form (status %d):\n%s", resp.StatusCode, body)
	}
	action := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindStringSubmatch(string(body))
	if action == nil {
		t.Fatalf("no form action in:\n%s", body)
	}
	formURL, err := resp.Request.URL.Parse(strings.ReplaceAll(action[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}

	// A wrong password stays on the form.
	resp, err = hc.PostForm(formURL.String(), url.Values{"login": {"ann@example.com"}, "password": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusFound || !strings.Contains(string(body), "Invalid") {
		t.Fatalf("wrong password: status %d, want the form again with an error", resp.StatusCode)
	}

	resp, err = hc.PostForm(formURL.String(), url.Values{"login": {"ann@example.com"}, "password": {"pw-ann"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("login: status %d, no redirect to the client: %v", resp.StatusCode, err)
	}
	if got := loc.Query().Get("state"); got != "st4te" {
		t.Errorf("state = %q, want st4te", got)
	}
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("redirect %s has no code", loc)
	}

	ctx := oidc.ClientContext(context.Background(), hc)
	provider, err := oidc.NewProvider(ctx, dex.Issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	conf := oauth2.Config{ClientID: "harness", ClientSecret: "harness-secret", Endpoint: provider.Endpoint(), RedirectURL: redirect}
	tok, err := conf.Exchange(ctx, code)
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: "harness"}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	var claims struct {
		Email  string   `json:"email"`
		Groups []string `json:"groups"`
		Name   string   `json:"name"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	want := struct {
		Email  string   `json:"email"`
		Groups []string `json:"groups"`
		Name   string   `json:"name"`
	}{"ann@example.com", []string{"engineering", "sre"}, "ann"}
	if diff := cmp.Diff(want, claims); diff != "" {
		t.Errorf("ID token claims (-want +got):\n%s", diff)
	}
}
