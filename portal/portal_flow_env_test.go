package portal

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/descope/virtualwebauthn"
)

// ptKey is a virtual security key with one credential.
type ptKey struct {
	rp   virtualwebauthn.RelyingParty
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newPTKey() *ptKey {
	return &ptKey{
		rp:   virtualwebauthn.RelyingParty{ID: "gate.test", Name: "Gatehouse", Origin: "https://gate.test"},
		auth: virtualwebauthn.NewAuthenticator(),
		cred: virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, ptP256Key()),
	}
}

// ptP256Key returns a PKCS#8 P-256 key whose public coordinates both need
// all 32 bytes. virtualwebauthn encodes the COSE key's x and y with
// big.Int.Bytes, which drops leading zero bytes, so about one key in 128
// would be encoded wrongly and fail to verify: a flaky test, not a bug in
// Gatehouse.
func ptP256Key() []byte {
	for {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		if len(k.X.Bytes()) != 32 || len(k.Y.Bytes()) != 32 {
			continue
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		return der
	}
}

// dataAttr extracts a data- attribute from a rendered page.
func dataAttr(body, name string) string {
	m := regexp.MustCompile(`data-` + regexp.QuoteMeta(name) + `="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return htmlUnescape(m[1])
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#39;", "'", "&quot;", `"`, "&lt;", "<", "&gt;", ">").Replace(s)
}

// postJSON posts body to the portal as the page's script does.
func (e *ptEnv) postJSON(c *http.Client, path, csrf, body string) ptResp {
	e.t.Helper()
	return e.do(c, http.MethodPost, "https://gate.test"+path, strings.NewReader(body), map[string]string{
		"Content-Type": "application/json", "Origin": "https://gate.test", csrfHeader: csrf,
	})
}

// ceremony runs the WebAuthn ceremony of a rendered enrol or assert page
// with key, as webauthn.js would, and returns the finish answer.
func (e *ptEnv) ceremony(c *http.Client, page ptResp, key *ptKey) ptResp {
	e.t.Helper()
	mode := dataAttr(page.body, "mode")
	csrf := dataAttr(page.body, "csrf")
	switch mode {
	case "enroll":
		return e.register(c, key, csrf, dataAttr(page.body, "register-begin"), dataAttr(page.body, "register-finish"), "My key")
	case "add":
		if res := e.assertWith(c, key, csrf, dataAttr(page.body, "assert-begin"), dataAttr(page.body, "assert-finish")); res.StatusCode != http.StatusOK {
			e.t.Fatalf("add: assertion = %d %s", res.StatusCode, res.body)
		}
		return e.register(c, key, csrf, dataAttr(page.body, "register-begin"), dataAttr(page.body, "register-finish"), "Second key")
	case "assert", "stepup":
		return e.assertWith(c, key, csrf, dataAttr(page.body, "assert-begin"), dataAttr(page.body, "assert-finish"))
	}
	e.t.Fatalf("page has no ceremony (mode %q): %d %.300s", mode, page.StatusCode, page.body)
	return ptResp{}
}

func (e *ptEnv) register(c *http.Client, key *ptKey, csrf, begin, finish, name string) ptResp {
	e.t.Helper()
	res := e.postJSON(c, begin, csrf, `{"name":"x"}`)
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("register begin = %d %s", res.StatusCode, res.body)
	}
	opts, err := virtualwebauthn.ParseAttestationOptions(res.body)
	if err != nil {
		e.t.Fatalf("parse attestation options: %v\n%s", err, res.body)
	}
	key.auth.Options.UserHandle = []byte(opts.UserID)
	resp := virtualwebauthn.CreateAttestationResponse(key.rp, key.auth, key.cred, *opts)
	sep := "?"
	if strings.Contains(finish, "?") {
		sep = "&"
	}
	out := e.postJSON(c, finish+sep+"name="+url.QueryEscape(name), csrf, resp)
	if out.StatusCode == http.StatusOK {
		key.auth.AddCredential(key.cred)
	}
	return out
}

// assertWith runs an assertion; it returns the finish answer and keeps the
// response body in e.lastAssertion for replay tests.
func (e *ptEnv) assertWith(c *http.Client, key *ptKey, csrf, begin, finish string) ptResp {
	e.t.Helper()
	res := e.postJSON(c, begin, csrf, `{}`)
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("assert begin = %d %s", res.StatusCode, res.body)
	}
	opts, err := virtualwebauthn.ParseAssertionOptions(res.body)
	if err != nil {
		e.t.Fatalf("parse assertion options: %v\n%s", err, res.body)
	}
	key.cred.Counter++
	resp := virtualwebauthn.CreateAssertionResponse(key.rp, key.auth, key.cred, *opts)
	e.lastAssertion = resp
	return e.postJSON(c, finish, csrf, resp)
}

// redirectOf returns the "redirect" of a finish answer.
func (e *ptEnv) redirectOf(res ptResp) string {
	e.t.Helper()
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("ceremony finish = %d %s", res.StatusCode, res.body)
	}
	var v struct {
		Redirect string `json:"redirect"`
	}
	if err := json.Unmarshal([]byte(res.body), &v); err != nil || v.Redirect == "" {
		e.t.Fatalf("ceremony finish answer %q has no redirect", res.body)
	}
	return v.Redirect
}

// follow GETs rawURL and follows redirects on the test hosts (never to the
// IdP) until a non-redirect answer, which it returns.
func (e *ptEnv) follow(c *http.Client, rawURL string) ptResp {
	e.t.Helper()
	cur := rawURL
	for i := 0; i < 10; i++ {
		res := e.get(c, cur)
		loc := res.Header.Get("Location")
		if res.StatusCode < 300 || res.StatusCode > 399 || loc == "" || strings.HasPrefix(loc, "https://idp.test/") {
			return res
		}
		cur = ptAbs(res.Request.URL, loc)
	}
	e.t.Fatalf("too many redirects from %s", rawURL)
	return ptResp{}
}

// login signs email in from startURL with key (enrolling it if the page
// asks for an enrolment) and returns the final answer after following the
// redirects: for an app URL, the upstream's answer.
func (e *ptEnv) login(c *http.Client, key *ptKey, startURL, email string, groups ...string) ptResp {
	e.t.Helper()
	res := e.signIn(c, startURL, email, groups...)
	page := e.follow(c, ptAbs(res.Request.URL, res.Header.Get("Location")))
	return e.follow(c, ptAbs(page.Request.URL, e.redirectOf(e.ceremony(c, page, key))))
}

// echo decodes the upstream's echo.
func (e *ptEnv) echo(res ptResp) ptEcho {
	e.t.Helper()
	var v ptEcho
	if res.StatusCode != http.StatusOK || json.Unmarshal([]byte(res.body), &v) != nil || v.URI == "" {
		e.t.Fatalf("want the upstream's echo, got %d %.400s", res.StatusCode, res.body)
	}
	return v
}

// credID encodes a credential ID as the portal's forms do.
func credID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }
