package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// Click clicks the first element matching the CSS selector sel, waiting
// for it to be visible first. A page that is still being replaced (the
// node found belonged to the previous document) is retried until the
// browser's timeout.
func (tab *Tab) Click(sel string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	for {
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
		if err == nil {
			return
		}
		if !staleNode(err) || ctx.Err() != nil {
			tab.Fatalf("click %s: %v", sel, err)
		}
		time.Sleep(100 * time.Millisecond)
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
