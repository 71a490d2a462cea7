package harness

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
)

// startTLSServer serves h over HTTPS on 127.0.0.1 with a certificate from
// ca for host, and returns the server and "https://host:PORT".
func startTLSServer(t *testing.T, ca *CA, host string, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.TLSCertificate(t, host)}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return "https://" + host + ":" + port
}

// TestBrowserDexLogin drives a real Dex login in Chromium: the
// authorization URL, Dex's password form (a wrong password first), and the
// redirect carrying the code and state to a client on a mapped host name.
func TestBrowserDexLogin(t *testing.T) {
	ca := NewCA(t)
	got := make(chan string, 1)
	client := startTLSServer(t, ca, "client.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" {
			select {
			case got <- r.URL.RawQuery:
			default:
			}
		}
		io.WriteString(w, "client got "+r.URL.Path)
	}))
	dex := StartDex(t, DexOptions{
		CA:      ca,
		Users:   []DexUser{{Email: "ann@example.com", Password: "pw-ann", Groups: []string{"engineering"}}},
		Clients: []DexClient{{ID: "harness", Secret: "harness-secret", RedirectURIs: []string{client + "/callback"}}},
	})
	b := NewBrowser(t, BrowserOptions{CA: ca})
	tab := b.NewTab(t)

	tab.Navigate(dex.AuthURL("harness", client+"/callback", "st4te"))
	tab.DexLogin("ann@example.com", "not-the-password")
	tab.WaitText("Invalid Email Address and password")

	tab.DexLogin("ann@example.com", "pw-ann")
	u := tab.WaitURLPrefix(client + "/callback?")
	tab.WaitText("client got /callback")
	q := <-got
	if !strings.Contains(q, "state=st4te") || !strings.Contains(q, "code=") {
		t.Errorf("callback query = %q, want a code and state=st4te", q)
	}
	if !strings.Contains(u, "code=") {
		t.Errorf("final URL %q has no code", u)
	}
}

// webauthnPage registers and asserts with navigator.credentials; each
// function returns a string so the test sees errors as text.
const webauthnPage = `<!doctype html><html><head><title>webauthn</title></head><body><p>ready</p><script>
const b64u = b => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g,'-').replace(/\//g,'_').replace(/=+$/,'');
const unb64u = s => Uint8Array.from(atob(s.replace(/-/g,'+').replace(/_/g,'/')), c => c.charCodeAt(0));
async function reg() {
  try {
    const c = await navigator.credentials.create({publicKey: {
      challenge: crypto.getRandomValues(new Uint8Array(32)), rp: {name: "harness", id: location.hostname},
      user: {id: new Uint8Array([7,7,7]), name: "ann", displayName: "Ann"},
      pubKeyCredParams: [{type: "public-key", alg: -7}],
      authenticatorSelection: {userVerification: "required", residentKey: "required"}, timeout: 15000}});
    return "ok " + c.id;
  } catch (e) { return "error " + e.name + ": " + e.message; }
}
async function auth(id) {
  try {
    const a = await navigator.credentials.get({publicKey: {
      challenge: crypto.getRandomValues(new Uint8Array(32)), rpId: location.hostname,
      allowCredentials: [{type: "public-key", id: unb64u(id)}], userVerification: "required", timeout: 15000}});
    const d = new DataView(a.response.authenticatorData);
    return "ok " + a.id + " flags=" + d.getUint8(32) + " count=" + d.getUint32(33);
  } catch (e) { return "error " + e.name + ": " + e.message; }
}
</script></body></html>`

func evalString(t *testing.T, tab *Tab, expr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tab.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// TestBrowserWebAuthn registers a credential with the virtual
// authenticator on an HTTPS page under a mapped host name, asserts with
// it, and checks that a fresh browser context (no cookies) gets a copy of
// the key that still signs, with the counter continuing, and that clearing
// cookies keeps the key.
func TestBrowserWebAuthn(t *testing.T) {
	ca := NewCA(t)
	origin := startTLSServer(t, ca, "gate.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" { // e.g. /favicon.ico, which must not set the cookie again
			http.NotFound(w, r)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "seen", Value: "1", Path: "/", Secure: true, HttpOnly: true})
		io.WriteString(w, webauthnPage)
	}))
	b := NewBrowser(t, BrowserOptions{CA: ca})
	tab := b.NewTab(t)
	tab.Navigate(origin + "/")
	tab.WaitText("ready")
	if s := evalString(t, tab, `String(window.isSecureContext)`); s != "true" {
		t.Fatalf("isSecureContext = %s, want true", s)
	}
	res := evalString(t, tab, `reg()`)
	id, ok := strings.CutPrefix(res, "ok ")
	if !ok {
		tab.Fatalf("navigator.credentials.create: %s", res)
	}
	creds := tab.Credentials()
	if len(creds) != 1 || b64url(creds[0].CredentialID) != id || creds[0].RpID != "gate.test" || !creds[0].IsResidentCredential {
		t.Fatalf("authenticator credentials = %+v, want one resident credential %s for gate.test", creds, id)
	}

	// Assertion in the same tab: UP (0x01) and UV (0x04) set, counter > 0.
	first := evalString(t, tab, fmt.Sprintf(`auth(%q)`, id))
	if !strings.HasPrefix(first, "ok "+id+" flags=") || !strings.Contains(first, "count=") {
		tab.Fatalf("navigator.credentials.get: %s", first)
	}
	var flags, count1 int
	fmt.Sscanf(strings.TrimPrefix(first, "ok "+id+" "), "flags=%d count=%d", &flags, &count1)
	if flags&0x05 != 0x05 || count1 < 1 {
		t.Errorf("assertion flags=%#x count=%d, want UP|UV and count >= 1", flags, count1)
	}

	// A fresh context: no cookies, same key, counter continues.
	if len(tab.Cookies()) == 0 {
		t.Fatalf("first tab has no cookies; the server set one")
	}
	tab2 := b.NewContext(t)
	if c := tab2.Cookies(); len(c) != 0 {
		t.Errorf("new context has %d cookies, want none", len(c))
	}
	tab2.Navigate(origin + "/")
	tab2.WaitText("ready")
	second := evalString(t, tab2, fmt.Sprintf(`auth(%q)`, id))
	var count2 int
	fmt.Sscanf(strings.TrimPrefix(second, "ok "+id+" "), "flags=%d count=%d", &flags, &count2)
	if !strings.HasPrefix(second, "ok ") || count2 <= count1 {
		t.Errorf("assertion in new context = %q (count %d), want ok with count > %d", second, count2, count1)
	}

	// ClearCookies keeps the authenticator.
	tab2.ClearCookies()
	if c := tab2.Cookies(); len(c) != 0 {
		t.Errorf("after ClearCookies: %d cookies, want none", len(c))
	}
	if third := evalString(t, tab2, fmt.Sprintf(`auth(%q)`, id)); !strings.HasPrefix(third, "ok ") {
		t.Errorf("assertion after ClearCookies = %q, want ok", third)
	}
	if diff := cmp.Diff([]string{id}, credIDs(tab2)); diff != "" {
		t.Errorf("new context's credentials (-want +got):\n%s", diff)
	}

	// Closed tabs hand their keys on: with every tab closed, a new one
	// still has the key, with the latest counter.
	latest := tab2.Credentials()[0].SignCount
	tab.Close()
	tab2.Close()
	tab3 := b.NewContext(t)
	creds = tab3.Credentials()
	if len(creds) != 1 || b64url(creds[0].CredentialID) != id || creds[0].SignCount != latest {
		t.Errorf("after closing all tabs: credentials %+v, want %s with count %v", creds, id, latest)
	}
}

func credIDs(tab *Tab) []string {
	var ids []string
	for _, c := range tab.Credentials() {
		ids = append(ids, b64url(c.CredentialID))
	}
	return ids
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestSignIn runs Tab.SignIn against a fake portal with the same page
// structure as Gatehouse's: a sign-in link, Dex's form, and a security-key
// button that creates a credential before moving on.
func TestSignIn(t *testing.T) {
	ca := NewCA(t)
	var dex *Dex
	mux := http.NewServeMux()
	var origin string
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><section aria-labelledby="login-h"><h1 id="login-h">Sign in</h1>
<p><a class="button primary" href="%s">Sign in</a></p></section>`, dex.AuthURL("harness", origin+"/callback", "s"))
	})
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<!doctype html><p><button type="button" id="webauthn-start">Set up security key</button></p><script>
document.getElementById("webauthn-start").onclick = async () => {
  await navigator.credentials.create({publicKey: {challenge: new Uint8Array(32), rp: {name: "t", id: location.hostname},
    user: {id: new Uint8Array([1]), name: "ann", displayName: "Ann"}, pubKeyCredParams: [{type: "public-key", alg: -7}],
    authenticatorSelection: {userVerification: "required"}}});
  location = "/landing?done=1";
};</script>`)
	})
	mux.HandleFunc("/landing", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "landed") })
	origin = startTLSServer(t, ca, "gate.test", mux)
	dex = StartDex(t, DexOptions{
		CA:      ca,
		Users:   []DexUser{{Email: "ann@example.com", Password: "pw-ann"}},
		Clients: []DexClient{{ID: "harness", Secret: "harness-secret", RedirectURIs: []string{origin + "/callback"}}},
	})
	tab := NewBrowser(t, BrowserOptions{CA: ca}).NewTab(t)
	tab.Navigate(origin + "/")
	tab.SignIn("ann@example.com", "pw-ann", origin+"/landing")
	tab.WaitText("landed")
	if n := len(tab.Credentials()); n != 1 {
		t.Errorf("credentials after sign-in = %d, want 1 (the security-key step ran once)", n)
	}
}
