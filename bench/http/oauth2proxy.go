package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"
)

const oauth2ProxyClientSecret = "oauth2-proxy-bench-secret"

// startOAuth2Proxy runs oauth2-proxy v7 as an HTTPS reverse proxy to the
// upstream, with Dex as its OIDC provider and the default cookie session
// store. Request logging is off, as nginx's access log is, so that no
// proxy pays for per-request logging.
func startOAuth2Proxy(dir, bin string, port, httpPort, upPort int, issuer, certFile, keyFile string) (*proc, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	return start(dir, "oauth2-proxy", nil, bin,
		"--provider=oidc",
		"--oidc-issuer-url="+issuer,
		"--provider-ca-file="+certFile,
		"--client-id=oauth2-proxy",
		"--client-secret="+oauth2ProxyClientSecret,
		"--code-challenge-method=S256",
		"--cookie-secret="+base64.RawURLEncoding.EncodeToString(secret),
		"--cookie-secure=true",
		"--email-domain=*",
		fmt.Sprintf("--upstream=http://127.0.0.1:%d/", upPort),
		fmt.Sprintf("--https-address=127.0.0.1:%d", port),
		fmt.Sprintf("--http-address=127.0.0.1:%d", httpPort),
		"--tls-cert-file="+certFile,
		"--tls-key-file="+keyFile,
		fmt.Sprintf("--redirect-url=https://localhost:%d/oauth2/callback", port),
		"--skip-provider-button=true",
		"--request-logging=false",
		"--auth-logging=false",
	)
}

// loginOAuth2Proxy signs benchUser in through oauth2-proxy and Dex's
// password form with a plain HTTP client and returns the Cookie header
// value oauth2-proxy set (its session cookie, possibly split).
func loginOAuth2Proxy(port int, roots *x509.CertPool) (string, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{
		Jar:       jar,
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}
	base := fmt.Sprintf("https://localhost:%d", port)
	var form *http.Response
	err := waitHTTP(c, base+"/oauth2/start?rd=%2F", 20*time.Second, nil, func(res *http.Response, body []byte) error {
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `name="password"`) {
			return fmt.Errorf("want Dex's login form, got %s", res.Status)
		}
		form = res
		return nil
	})
	if err != nil {
		return "", err
	}
	res, err := c.PostForm(form.Request.URL.String(), url.Values{"login": {benchUser.Email}, "password": {benchPassword}})
	if err != nil {
		return "", fmt.Errorf("post Dex login: %w", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode == http.StatusOK && strings.HasSuffix(res.Request.URL.Path, "/approval") {
		// oauth2-proxy asks for prompt=consent: grant it on Dex's page.
		q := res.Request.URL.Query()
		res, err = c.PostForm(res.Request.URL.String(), url.Values{"req": {q.Get("req")}, "hmac": {q.Get("hmac")}, "approval": {"approve"}})
		if err != nil {
			return "", fmt.Errorf("post Dex approval: %w", err)
		}
		body, _ = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if res.StatusCode != http.StatusOK || string(body) != upstreamBody {
		return "", fmt.Errorf("login through oauth2-proxy ended at %s with %s", res.Request.URL.Redacted(), res.Status)
	}
	u, _ := url.Parse(base + "/")
	var parts []string
	for _, ck := range jar.Cookies(u) {
		if strings.HasPrefix(ck.Name, "_oauth2_proxy") && !strings.Contains(ck.Name, "csrf") {
			parts = append(parts, ck.Name+"="+ck.Value)
		}
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("oauth2-proxy set no session cookie")
	}
	return strings.Join(parts, "; "), nil
}
