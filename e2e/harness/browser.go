package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// BrowserOptions configures NewBrowser.
type BrowserOptions struct {
	// HostResolverRules is Chromium's --host-resolver-rules. Empty means
	// "MAP * 127.0.0.1": every host name (gate.test, app.test, ...) goes to
	// loopback and keeps its port, so a URL's port must be the real port
	// the server listens on. IP literals (Dex's issuer) are not mapped.
	HostResolverRules string
	// CA is trusted for HTTPS: the browser gets
	// --ignore-certificate-errors-spki-list with the CA's SPKI hash and the
	// hashes of every certificate the CA issued before NewBrowser, and a
	// server whose chain includes the CA certificate (every file CA.Issue
	// writes does) or one of those leaves counts as valid. The page is then a
	// secure context with no certificate error, which WebAuthn needs.
	// (Verified: navigator.credentials.create succeeds on
	// https://gate.test:PORT with this, and also with IgnoreCertErrors; with
	// neither, the page is Chromium's certificate interstitial.)
	CA *CA
	// TrustSPKI adds base64 SHA-256 SPKI hashes to
	// --ignore-certificate-errors-spki-list: a certificate chain holding one
	// of these keys counts as valid (e.g. gatehouse's self_signed
	// certificate, as `make demo` prints).
	TrustSPKI []string
	// IgnoreCertErrors passes --ignore-certificate-errors: every certificate
	// is accepted (for gatehouse's self_signed mode). WebAuthn works too.
	IgnoreCertErrors bool
	// NoAuthenticator leaves tabs without a virtual authenticator (a
	// browser with no security key).
	NoAuthenticator bool
	// Timeout bounds each Tab helper call (Navigate, WaitURL, ...). Zero
	// means 30s.
	Timeout time.Duration
}

// Browser is a headless Debian Chromium (/usr/bin/chromium) driven with
// chromedp, started by NewBrowser for one test. Work happens in tabs
// (NewTab, NewContext); each tab has its own CTAP2 virtual authenticator
// (a security key with user verification and automatic presence), and a
// new tab's authenticator starts with copies of every credential that the
// browser's earlier tabs hold, so the person keeps "the same key" across
// tabs and fresh cookie jars.
//
// Usage:
//
//	ca := harness.NewCA(t)
//	b := harness.NewBrowser(t, harness.BrowserOptions{CA: ca})
//	tab := b.NewTab(t)
//	tab.Navigate("https://app.test:" + port + "/dash?x=1")
//	tab.DexLogin("ann@example.com", "pw-ann")       // on Dex's page
//	tab.WaitURLPrefix("https://app.test:" + port + "/dash?x=1")
//	// second login with the same key and no cookies:
//	tab2 := b.NewContext(t)
type Browser struct {
	opts    BrowserOptions
	ctx     context.Context // the browser's first tab; parent of every Tab
	timeout time.Duration

	mu    sync.Mutex // guards tabs and saved
	tabs  []*Tab
	saved []*webauthn.Credential // credentials of tabs already closed
}

// NewBrowser starts Chromium with a fresh --user-data-dir in t.TempDir()
// and the flags the team verified for running as root in a container
// (--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
// --disable-background-networking --disable-component-update
// --disable-sync). It stops Chromium when the test ends.
func NewBrowser(t testing.TB, opts BrowserOptions) *Browser {
	t.Helper()
	exe := "/usr/bin/chromium"
	if _, err := os.Stat(exe); err != nil {
		t.Fatalf("NewBrowser: %s missing (Debian package chromium): %s", exe, installHint)
	}
	rules := opts.HostResolverRules
	if rules == "" {
		rules = "MAP * 127.0.0.1"
	}
	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("host-resolver-rules", rules),
		chromedp.WindowSize(1280, 900),
	}
	spki := opts.TrustSPKI
	if opts.CA != nil {
		spki = append(opts.CA.spkiHashes(), spki...)
	}
	if len(spki) > 0 {
		flags = append(flags, chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(spki, ",")))
	}
	if opts.IgnoreCertErrors {
		flags = append(flags, chromedp.IgnoreCertErrors)
	}
	b := &Browser{opts: opts, timeout: opts.Timeout}
	if b.timeout == 0 {
		b.timeout = 30 * time.Second
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), flags...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf), chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	// The first run starts the browser; its context has no timeout, so the
	// browser lives until cleanup (chromedp docs, "Set a timeout").
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("NewBrowser: start chromium: %v", err)
	}
	b.ctx = ctx
	return b
}

// NewTab opens a tab in the browser's default profile: it shares cookies
// with the other tabs that NewTab opened. Like NewContext, it gets its own
// virtual authenticator with copies of the browser's keys (see there).
func (b *Browser) NewTab(t testing.TB) *Tab {
	t.Helper()
	return b.newTab(t, false)
}

// NewContext opens a tab in a new incognito-like browser context: no
// cookies or storage from any other tab, but (unless NoAuthenticator) a
// virtual authenticator holding copies of the credentials of every tab of
// this browser, open or closed — the same person with the same security
// key in a fresh browser. Note that a copy is a clone: the signature counter
// continues from the copied value, so after a NewContext keep using only
// the new tab for WebAuthn (or the relying party sees a counter go back,
// which is how a cloned-key test is built on purpose).
func (b *Browser) NewContext(t testing.TB) *Tab {
	t.Helper()
	return b.newTab(t, true)
}

func (b *Browser) newTab(t testing.TB, fresh bool) *Tab {
	t.Helper()
	var opts []chromedp.ContextOption
	if fresh {
		opts = append(opts, chromedp.WithNewBrowserContext())
	}
	ctx, cancel := chromedp.NewContext(b.ctx, opts...)
	tab := &Tab{Ctx: ctx, t: t, b: b, consoleDone: make(chan struct{})}
	keys := b.credentials(t)
	// Setup runs without a timeout: the first run on a context binds the
	// tab's lifetime to it.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("open tab: %v", err)
	}
	tab.close = sync.OnceFunc(func() {
		// Keep the tab's keys for later tabs (a subtest's tab closes when
		// the subtest ends, but the person keeps their security key).
		if tab.AuthenticatorID != "" {
			if creds, err := tab.credentials(); err == nil {
				b.mu.Lock()
				b.saved = mergeCredentials(b.saved, creds)
				b.mu.Unlock()
			}
		}
		cancel()
		<-tab.consoleDone
	})
	t.Cleanup(tab.Close)
	go tab.logConsole()
	if !b.opts.NoAuthenticator {
		if err := tab.addAuthenticator(keys); err != nil {
			t.Fatalf("virtual authenticator: %v", err)
		}
	}
	b.mu.Lock()
	b.tabs = append(b.tabs, tab)
	b.mu.Unlock()
	return tab
}

// credentials collects the credentials of every open tab's authenticator
// and of the closed tabs; for a credential held in several places, the copy
// with the highest counter wins.
func (b *Browser) credentials(t testing.TB) []*webauthn.Credential {
	t.Helper()
	b.mu.Lock()
	tabs := append([]*Tab(nil), b.tabs...)
	all := append([]*webauthn.Credential(nil), b.saved...)
	b.mu.Unlock()
	for _, tab := range tabs {
		if tab.AuthenticatorID == "" || tab.Ctx.Err() != nil {
			continue
		}
		creds, err := tab.credentials()
		if err != nil {
			t.Fatalf("read credentials of an earlier tab: %v", err)
		}
		all = mergeCredentials(all, creds)
	}
	return all
}

// mergeCredentials adds add to have; for the same credential ID it keeps
// the copy with the higher signature counter, in have's order.
func mergeCredentials(have, add []*webauthn.Credential) []*webauthn.Credential {
	out := append([]*webauthn.Credential(nil), have...)
	for _, c := range add {
		i := slices.IndexFunc(out, func(o *webauthn.Credential) bool { return bytes.Equal(o.CredentialID, c.CredentialID) })
		switch {
		case i < 0:
			out = append(out, c)
		case c.SignCount > out[i].SignCount:
			out[i] = c
		}
	}
	return out
}

// Tab is one browser tab with its own virtual authenticator. Its methods
// fail the test (with a screenshot, the URL and the page text) when a step
// fails or takes longer than BrowserOptions.Timeout; use Ctx with
// chromedp.Do/Run and the ctx-taking helpers (WaitURL, WaitText, DexLogin)
// for anything else.
type Tab struct {
	// Ctx is the tab's chromedp context:
	//	chromedp.Run(tab.Ctx, chromedp.Text(chromedp.ID("who")))
	Ctx context.Context
	// AuthenticatorID names the tab's virtual authenticator for the
	// WebAuthn domain (e.g. webauthn.SetUserVerified); "" without one.
	AuthenticatorID webauthn.AuthenticatorID

	t           testing.TB
	b           *Browser
	close       func()
	consoleDone chan struct{} // closed when logConsole returns
}

// addAuthenticator enables the WebAuthn domain on the tab and adds a CTAP2
// USB security key with resident keys and user verification, which
// touches itself (AutomaticPresenceSimulation), loaded with creds.
func (tab *Tab) addAuthenticator(creds []*webauthn.Credential) error {
	ctx := tab.Ctx
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{EnableUI: new(false)}); err != nil {
		return fmt.Errorf("WebAuthn.enable: %w", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   webauthn.AuthenticatorTransportUsb,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		return fmt.Errorf("WebAuthn.addVirtualAuthenticator: %w", err)
	}
	tab.AuthenticatorID = res.AuthenticatorID
	for _, c := range creds {
		if err := tab.AddCredential(c); err != nil {
			return err
		}
	}
	return nil
}

// credentials returns the credentials in the tab's authenticator.
func (tab *Tab) credentials() ([]*webauthn.Credential, error) {
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	res, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: tab.AuthenticatorID})
	if err != nil {
		return nil, fmt.Errorf("WebAuthn.getCredentials: %w", err)
	}
	return res.Credentials, nil
}

// Credentials returns the credentials (private keys and counters
// included) that the tab's virtual authenticator holds.
func (tab *Tab) Credentials() []*webauthn.Credential {
	tab.t.Helper()
	if tab.AuthenticatorID == "" {
		tab.t.Fatalf("Tab.Credentials: the tab has no authenticator")
	}
	creds, err := tab.credentials()
	if err != nil {
		tab.Fatalf("%v", err)
	}
	return creds
}

// AddCredential copies a credential (from another tab's Credentials) into
// the tab's authenticator.
func (tab *Tab) AddCredential(c *webauthn.Credential) error {
	ctx, cancel := context.WithTimeout(tab.Ctx, tab.b.timeout)
	defer cancel()
	// cdproto's Credential always sends generateCmtgKeyOnNextOperation,
	// and Chromium then refuses the credential ("CMTG is not supported by
	// this authenticator"), so send only the fields that describe a plain
	// credential.
	type credential struct {
		CredentialID         []byte  `json:"credentialId"`
		IsResidentCredential bool    `json:"isResidentCredential"`
		RpID                 string  `json:"rpId,omitempty"`
		PrivateKey           []byte  `json:"privateKey"`
		UserHandle           []byte  `json:"userHandle,omitempty"`
		SignCount            float64 `json:"signCount"`
		LargeBlob            []byte  `json:"largeBlob,omitempty"`
		BackupEligibility    bool    `json:"backupEligibility"`
		BackupState          bool    `json:"backupState"`
		UserName             string  `json:"userName,omitempty"`
		UserDisplayName      string  `json:"userDisplayName,omitempty"`
	}
	params := struct {
		AuthenticatorID webauthn.AuthenticatorID `json:"authenticatorId"`
		Credential      credential               `json:"credential"`
	}{tab.AuthenticatorID, credential{
		CredentialID: c.CredentialID, IsResidentCredential: c.IsResidentCredential, RpID: c.RpID,
		PrivateKey: c.PrivateKey, UserHandle: c.UserHandle, SignCount: c.SignCount, LargeBlob: c.LargeBlob,
		BackupEligibility: c.BackupEligibility, BackupState: c.BackupState,
		UserName: c.UserName, UserDisplayName: c.UserDisplayName,
	}}
	add := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		return t.Call(ctx, webauthn.CommandAddCredential, params, &cdp.Empty{})
	})
	if err := chromedp.Do(ctx, add); err != nil {
		return fmt.Errorf("WebAuthn.addCredential: %w", err)
	}
	return nil
}

// Close closes the tab (and its browser context, for NewContext tabs). The
// test's cleanup calls it too; it is idempotent.
func (tab *Tab) Close() { tab.close() }

// logConsole sends the page's console messages and uncaught exceptions to
// t.Log until the tab closes; the browser's verbose ("debug") entries,
// such as DOM lint hints, are left out.
func (tab *Tab) logConsole() {
	defer close(tab.consoleDone)
	for m, err := range chromedp.Console(tab.Ctx) {
		if err != nil {
			return
		}
		if m.Type == chromedp.ConsoleDebug {
			continue
		}
		tab.t.Logf("[chromium console %s] %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1)
	}
}
