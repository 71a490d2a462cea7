package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// ArtifactsDir is where Tab.Fatalf and Tab.Screenshot write screenshots
// and page dumps: $GATEHOUSE_E2E_ARTIFACTS if set (CI can upload it), else
// os.TempDir()/gatehouse-e2e-artifacts. Not t.TempDir(): that is deleted
// when the test ends, failed or not.
func ArtifactsDir() string {
	if d := os.Getenv("GATEHOUSE_E2E_ARTIFACTS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "gatehouse-e2e-artifacts")
}

// Do runs chromedp actions on the tab with the browser's timeout and fails
// the test (with a screenshot) on error:
//
//	tab.Do(chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.ID("done")))
func (tab *Tab) Do(actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tab.Fatalf("%v", err)
	}
}

// Navigate loads url and waits for the load event. A page that cannot load
// (certificate or connection error) fails the test. Redirects are followed;
// the final URL is Location().
func (tab *Tab) Navigate(url string) {
	tab.t.Helper()
	tab.Do(chromedp.Navigate(url))
}

// Location returns the tab's current URL.
func (tab *Tab) Location() string {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	u, err := URL(ctx)
	if err != nil {
		tab.Fatalf("read URL: %v", err)
	}
	return u
}

// WaitURL waits until match(URL) is true and returns the URL.
func (tab *Tab) WaitURL(what string, match func(string) bool) string {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	u, err := WaitURL(ctx, match)
	if err != nil {
		tab.Fatalf("waiting for %s: %v", what, err)
	}
	return u
}

// WaitURLPrefix waits until the URL starts with prefix and returns it:
//
//	u := tab.WaitURLPrefix("https://app.test:" + port + "/dash?x=1")
func (tab *Tab) WaitURLPrefix(prefix string) string {
	tab.t.Helper()
	return tab.WaitURL("URL "+prefix+"...", func(u string) bool { return strings.HasPrefix(u, prefix) })
}

// WaitText waits until the page's visible text contains text.
func (tab *Tab) WaitText(text string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	if err := WaitText(ctx, text); err != nil {
		tab.Fatalf("%v", err)
	}
}

// Text returns the page's visible text (document.body.innerText).
func (tab *Tab) Text() string {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	s, err := PageText(ctx)
	if err != nil {
		tab.Fatalf("read page text: %v", err)
	}
	return s
}

// Click clicks the first element matching the CSS selector sel, once the
// page has loaded completely (so deferred scripts have bound their click
// handlers) and the element is visible. A page that is still being
// replaced (the node found belonged to the previous document) is retried
// until the browser's timeout.
func (tab *Tab) Click(sel string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	for {
		err := waitLoaded(ctx)
		if err == nil {
			err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
		}
		if err == nil {
			return
		}
		if !staleNode(err) || ctx.Err() != nil {
			tab.Fatalf("click %s: %v", sel, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLoaded waits until the document's readyState is "complete".
func waitLoaded(ctx context.Context) error {
	for {
		state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState`))
		if err == nil && state == "complete" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("page never finished loading (readyState %q, %v): %w", state, err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// staleNode reports whether err is Chromium saying a node or JavaScript
// context vanished under a navigation.
func staleNode(err error) bool {
	msg := err.Error()
	for _, s := range []string{"Could not find node", "No node with given id", "Cannot find context", "context was destroyed", "Node is detached"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// DexLogin fills Dex's password form on the current page (waiting for it)
// and submits it. The caller then waits for where the login leads.
func (tab *Tab) DexLogin(email, password string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	if err := DexLogin(ctx, email, password); err != nil {
		tab.Fatalf("%v", err)
	}
}

// Screenshot saves a PNG of the tab and a text dump (URL and page text)
// under ArtifactsDir(), logs the paths and returns the PNG's path ("" if
// the browser could not take one).
func (tab *Tab) Screenshot(name string) string {
	tab.t.Helper()
	dir := ArtifactsDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tab.t.Logf("screenshot: %v", err)
		return ""
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%s-%s", fileSafe(tab.t.Name()), fileSafe(name), time.Now().Format("150405.000")))
	// The tab's own context may be what failed (a timeout): use a fresh
	// deadline on the same tab.
	ctx, cancel := context.WithTimeout(tab.Ctx, 10*time.Second)
	defer cancel()
	u, _ := URL(ctx)
	text, _ := PageText(ctx)
	os.WriteFile(base+".txt", []byte("URL: "+u+"\n\n"+text+"\n"), 0o644)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tab.t.Logf("screenshot %s: %v (page dump in %s.txt)", name, err, base)
		return ""
	}
	if err := os.WriteFile(base+".png", png, 0o644); err != nil {
		tab.t.Logf("screenshot: %v", err)
		return ""
	}
	tab.t.Logf("screenshot: %s.png (page dump %s.txt)", base, base)
	return base + ".png"
}

// Fatalf saves a screenshot, logs the URL and the start of the page text,
// and fails the test.
func (tab *Tab) Fatalf(format string, args ...any) {
	tab.t.Helper()
	tab.Screenshot("failure")
	ctx, cancel := context.WithTimeout(tab.Ctx, 5*time.Second)
	defer cancel()
	u, _ := URL(ctx)
	text, _ := PageText(ctx)
	if len(text) > 2000 {
		text = text[:2000] + "..."
	}
	tab.t.Fatalf("%s\n  at URL %s\n  page text:\n%s", fmt.Sprintf(format, args...), u, text)
}

// Cookies returns the cookies of the tab's browser context (all hosts).
func (tab *Tab) Cookies() []*network.Cookie {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	res, err := chromedp.CallBrowser(ctx, storage.GetCookies, storage.GetCookiesParams{BrowserContextID: tab.browserContextID()})
	if err != nil {
		tab.Fatalf("Storage.getCookies: %v", err)
	}
	return res.Cookies
}

// ClearCookies deletes every cookie of the tab's browser context and keeps
// the authenticator and its credentials: "sign in again with the same key".
func (tab *Tab) ClearCookies() {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	if _, err := chromedp.CallBrowser(ctx, storage.ClearCookies, storage.ClearCookiesParams{BrowserContextID: tab.browserContextID()}); err != nil {
		tab.Fatalf("Storage.clearCookies: %v", err)
	}
}

func (tab *Tab) browserContextID() cdp.BrowserContextID {
	return chromedp.FromContext(tab.Ctx).BrowserContextID
}

// URL returns the tab's current URL from the browser (no JavaScript, so it
// works on error pages and during a navigation).
func URL(ctx context.Context) (string, error) {
	c := chromedp.FromContext(ctx)
	if c == nil || c.Target == nil {
		return "", errors.New("not a chromedp tab context")
	}
	res, err := chromedp.CallBrowser(ctx, target.GetTargetInfo, target.GetTargetInfoParams{TargetID: c.Target.TargetID})
	if err != nil {
		return "", err
	}
	return res.TargetInfo.URL, nil
}

// WaitURL polls the tab's URL until match returns true and returns that
// URL, or returns ctx's error with the last URL seen.
//
//	u, err := harness.WaitURL(ctx, func(u string) bool { return strings.HasPrefix(u, want) })
func WaitURL(ctx context.Context, match func(string) bool) (string, error) {
	var last string
	for {
		if u, err := URL(ctx); err == nil {
			last = u
			if match(u) {
				return u, nil
			}
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("URL is %q: %w", last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PageText returns document.body.innerText ("" before there is a body).
func PageText(ctx context.Context) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
}

// WaitText polls until the page's visible text contains text. Navigations
// in between are fine.
func WaitText(ctx context.Context, text string) error {
	for {
		if s, err := PageText(ctx); err == nil && strings.Contains(s, text) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("page text never contained %q: %w", text, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// SignIn drives Gatehouse's sign-in from the current page until the URL
// starts with landing, doing each step the pages ask for, in any order:
// the portal's "Sign in" link, Dex's password form (email, password) and
// the security-key step (enrolment or assertion: the portal's button
// id="webauthn-start", which the tab's virtual authenticator answers). Each step is done at most once
// per URL, so a refused step ends in a failure with a screenshot rather
// than a loop. Steps wait until the page has loaded completely, so that
// its deferred scripts have bound their handlers.
//
//	tab.Navigate(appURL + "/dash?x=1")
//	tab.SignIn("ann@example.com", "pw-ann", appURL+"/dash?x=1")
func (tab *Tab) SignIn(email, password, landing string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	done := map[string]bool{} // step+URL already done
	for {
		u, err := URL(ctx)
		if err == nil && strings.HasPrefix(u, landing) {
			return
		}
		step := ""
		if err == nil {
			step, _ = chromedp.Run(ctx, chromedp.Evaluate[string](signInStepJS))
		}
		if step != "" && !done[step+" "+u] {
			var err error
			switch step {
			case "dex":
				err = DexLogin(ctx, email, password)
			case "sso":
				err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(ssoLinkSelector), chromedp.NodeVisible))
			case "key":
				err = chromedp.Do(ctx, chromedp.Click(chromedp.ID("webauthn-start"), chromedp.NodeVisible))
			}
			switch {
			case err == nil:
				done[step+" "+u] = true
			case !staleNode(err) && ctx.Err() == nil:
				tab.Fatalf("sign in: step %s: %v", step, err)
			}
		}
		select {
		case <-ctx.Done():
			tab.Fatalf("sign in: never reached %s", landing)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ssoLinkSelector finds the "Sign in" link of the portal's sign-in page.
const ssoLinkSelector = `section[aria-labelledby="login-h"] a.primary`

// signInStepJS names the sign-in step the page shows: "dex", "key", "sso"
// or "".
var signInStepJS = fmt.Sprintf(`(() => {
	if (document.readyState !== "complete") return "";
	const vis = e => e && e.offsetParent !== null && !e.disabled;
	if (vis(document.getElementById("login")) && document.getElementById("password")) return "dex";
	if (vis(document.getElementById("webauthn-start"))) return "key";
	if (vis(document.querySelector(%q))) return "sso";
	return "";
})()`, ssoLinkSelector)

// SSHApproval is what Gatehouse's keyboard-interactive prompt shows for an
// SSH connection that needs approval.
type SSHApproval struct {
	URL  string // PUBLIC_URL/approve/ID
	Code string // the verification code
}

var (
	approvalURLRE  = regexp.MustCompile(`https://\S+/approve/[^\s/]+`)
	approvalCodeRE = regexp.MustCompile(`Verification code: (\S+)\s`) // complete: a line break follows
)

// ParseSSHApproval finds the approval URL and verification code in ssh's
// output (stderr); ok is false until both are there in full, so a caller
// can poll a growing buffer with it.
func ParseSSHApproval(output string) (a SSHApproval, ok bool) {
	a.URL = approvalURLRE.FindString(output)
	if m := approvalCodeRE.FindStringSubmatch(output); m != nil {
		a.Code = m[1]
	}
	return a, a.URL != "" && a.Code != ""
}

// ApproveSSH opens the approval page in the tab, signs in if the portal
// asks (see SignIn), checks that the page does not show the verification
// code (number matching: the person types it), types the code ssh showed,
// approves with the security key and waits for "Connection approved".
func (tab *Tab) ApproveSSH(a SSHApproval, email, password string) {
	tab.t.Helper()
	tab.Navigate(a.URL)
	tab.SignIn(email, password, a.URL)
	tab.WaitText("Approve an SSH connection")
	if strings.Contains(tab.Text(), a.Code) {
		tab.Fatalf("approval page shows the verification code %q; the person must type it", a.Code)
	}
	tab.Type("#code", a.Code)
	tab.Click("#approve")
	tab.WaitText("Connection approved")
}

// Type replaces the value of the input matching the CSS selector sel with
// text, typed as keys, once the page has loaded and the input is visible.
func (tab *Tab) Type(sel, text string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	for {
		err := waitLoaded(ctx)
		if err == nil {
			err = chromedp.Do(ctx, chromedp.Clear(chromedp.CSS(sel), chromedp.NodeVisible))
		}
		if err == nil {
			err = chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(sel), text, chromedp.NodeVisible))
		}
		if err == nil {
			return
		}
		if !staleNode(err) || ctx.Err() != nil {
			tab.Fatalf("type into %s: %v", sel, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
