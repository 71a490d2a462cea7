package harness

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"
)

// DexUser is a static Dex user (Dex's staticPasswords).
type DexUser struct {
	Email    string
	Password string
	// Groups reach the ID token's "groups" claim when the client asks for
	// the "groups" scope (Dex's staticPasswords[].groups).
	Groups []string
	// Name is the "name" claim; empty means the part of Email before "@".
	Name string
}

// DexClient is a static OAuth2 client (Dex's staticClients).
type DexClient struct {
	ID     string
	Secret string
	// RedirectURIs must list every redirect URI the client uses, e.g.
	// PUBLIC_URL + "/auth/callback".
	RedirectURIs []string
}

// DexOptions configures StartDex.
type DexOptions struct {
	Users   []DexUser
	Clients []DexClient
	// CA issues Dex's TLS certificate. Nil means a new CA; either way it is
	// Dex.CA, and clients (gatehouse's sso.ca_roots, Chromium) must trust it.
	CA *CA
}

// Dex is a real Dex identity provider (.tools/bin/dex, built by
// scripts/install-deps.sh from the e2e/tools module) started by StartDex.
type Dex struct {
	// Issuer is "https://127.0.0.1:PORT/dex". An IP address (not a name)
	// makes the issuer reachable both from Go (which does not resolve test
	// names such as dex.test) and from Chromium, whose --host-resolver-rules
	// leave IP literals alone.
	Issuer string
	// Addr is "127.0.0.1:PORT".
	Addr string
	// CA issued Dex's certificate (for 127.0.0.1); CAFile is its PEM file,
	// for gatehouse's sso.ca_roots.
	CA     *CA
	CAFile string
	// ConfigFile is the generated Dex config (JSON, which Dex reads as
	// YAML). It holds bcrypt hashes and client secrets.
	ConfigFile string

	clients map[string]DexClient
	d       *daemon
}

// StartDex writes a Dex config (HTTPS on 127.0.0.1 on a free port, memory
// storage, the password database with opts.Users as staticPasswords with
// bcrypt hashes of cost 10, opts.Clients as staticClients, the approval
// screen skipped), starts Dex, waits until its discovery document answers
// over TLS, and stops it when the test ends. Dex's log goes to t.Log.
//
// Usage:
//
//	dex := harness.StartDex(t, harness.DexOptions{
//		Users: []harness.DexUser{{Email: "ann@example.com", Password: "pw-ann", Groups: []string{"engineering"}}},
//		Clients: []harness.DexClient{{ID: "gatehouse", Secret: "s3cret",
//			RedirectURIs: []string{"https://gate.test:" + port + "/auth/callback"}}},
//	})
//	// config: sso: {issuer: dex.Issuer, client_id: gatehouse,
//	//   client_secret_file: dex.SecretFile(t, "gatehouse"), ca_roots: [dex.CAFile]}
//
// In Chromium, a login is harness.DexLogin on the page Dex shows.
func StartDex(t testing.TB, opts DexOptions) *Dex {
	t.Helper()
	bin, err := dexBinary()
	if err != nil {
		t.Fatalf("StartDex: %v", err)
	}
	ca := opts.CA
	if ca == nil {
		ca = NewCA(t)
	}
	port := FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, "127.0.0.1", "localhost")
	x := &Dex{
		Issuer:     "https://" + addr + "/dex",
		Addr:       addr,
		CA:         ca,
		CAFile:     ca.CAFile,
		ConfigFile: filepath.Join(dir, "dex.json"),
		clients:    map[string]DexClient{},
	}
	cfg, err := DexConfig(x.Issuer, addr, certFile, keyFile, opts)
	if err != nil {
		t.Fatalf("StartDex: %v", err)
	}
	writeFile(t, x.ConfigFile, cfg, 0o600)
	for _, c := range opts.Clients {
		x.clients[c.ID] = c
	}

	x.d = startDaemon(t, "dex", exec.Command(bin, "serve", x.ConfigFile))
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}},
	}
	defer client.CloseIdleConnections()
	x.d.waitReady(t, 30*time.Second, func() error {
		resp, err := client.Get(x.Issuer + "/.well-known/openid-configuration")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var doc struct {
			Issuer string `json:"issuer"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			return fmt.Errorf("discovery document: %w", err)
		}
		if doc.Issuer != x.Issuer {
			return fmt.Errorf("discovery issuer %q, want %q", doc.Issuer, x.Issuer)
		}
		return nil
	})
	return x
}

// SecretFile writes the secret of the client clientID to a new 0600 file
// and returns its path, for gatehouse's sso.client_secret_file.
func (x *Dex) SecretFile(t testing.TB, clientID string) string {
	t.Helper()
	c, ok := x.clients[clientID]
	if !ok {
		t.Fatalf("Dex.SecretFile: no client %q", clientID)
	}
	p := filepath.Join(t.TempDir(), clientID+"-secret")
	writeFile(t, p, []byte(c.Secret+"\n"), 0o600)
	return p
}

// AuthURL returns the URL of Dex's authorization endpoint for a plain
// authorization-code request (scopes openid email profile groups), for
// tests that drive Dex without gatehouse.
func (x *Dex) AuthURL(clientID, redirectURI, state string) string {
	q := url.Values{
		"client_id":     {clientID},
		"redirect_uri":  {redirectURI},
		"response_type": {"code"},
		"scope":         {"openid email profile groups"},
		"state":         {state},
	}
	return x.Issuer + "/auth?" + q.Encode()
}

// Logs returns everything Dex has logged so far (logins, failures).
func (x *Dex) Logs() string { return x.d.out.String() }

// Stop stops Dex now. It is idempotent; the test's cleanup calls it too.
func (x *Dex) Stop() { x.d.stop() }

// dexBinary returns the path of .tools/bin/dex in the repository.
func dexBinary() (string, error) {
	root, err := findRepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, ".tools", "bin", "dex")
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return "", fmt.Errorf("%s is missing: run scripts/install-deps.sh (`make deps`)", p)
	}
	return p, nil
}

// DexConfig renders a Dex config (JSON, which Dex reads as YAML) for an
// HTTPS listener on addr with the given certificate, memory storage and
// opts' users and clients; StartDex and the demo use it. Key names follow
// the pinned Dex version's cmd/dex/config.go: staticPasswords[].groups is
// what puts groups in the ID token for the password connector. Passwords
// are stored as bcrypt hashes (cost 10, Dex's minimum).
func DexConfig(issuer, addr, certFile, keyFile string, opts DexOptions) ([]byte, error) {
	type password struct {
		Email    string   `json:"email"`
		Hash     string   `json:"hash"`
		Username string   `json:"username"`
		Name     string   `json:"name"`
		UserID   string   `json:"userID"`
		Groups   []string `json:"groups"`
	}
	type client struct {
		ID           string   `json:"id"`
		Secret       string   `json:"secret"`
		Name         string   `json:"name"`
		RedirectURIs []string `json:"redirectURIs"`
	}
	var pws []password
	for _, u := range opts.Users {
		if u.Email == "" || u.Password == "" {
			return nil, fmt.Errorf("user %q: email and password are required", u.Email)
		}
		// Cost 10 is the minimum Dex accepts.
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.DefaultCost)
		if err != nil {
			return nil, fmt.Errorf("bcrypt: %w", err)
		}
		local, _, _ := strings.Cut(u.Email, "@")
		name := u.Name
		if name == "" {
			name = local
		}
		sum := sha256.Sum256([]byte(u.Email))
		pws = append(pws, password{
			Email: u.Email, Hash: string(hash), Username: local, Name: name,
			UserID: hex.EncodeToString(sum[:16]), Groups: u.Groups,
		})
	}
	var clients []client
	for _, c := range opts.Clients {
		if c.ID == "" || c.Secret == "" || len(c.RedirectURIs) == 0 {
			return nil, fmt.Errorf("client %q: id, secret and redirect URIs are required", c.ID)
		}
		clients = append(clients, client{ID: c.ID, Secret: c.Secret, Name: c.ID, RedirectURIs: c.RedirectURIs})
	}
	cfg := map[string]any{
		"issuer":  issuer,
		"storage": map[string]any{"type": "memory"},
		"web": map[string]any{
			"https":         addr,
			"tlsCert":       certFile,
			"tlsKey":        keyFile,
			"tlsMinVersion": "1.2",
		},
		"logger":           map[string]any{"level": "info", "format": "text"},
		"oauth2":           map[string]any{"skipApprovalScreen": true, "responseTypes": []string{"code"}},
		"expiry":           map[string]any{"idTokens": "1h", "authRequests": "10m"},
		"enablePasswordDB": true,
		"staticPasswords":  pws,
		"staticClients":    clients,
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// DexLogin fills Dex's password form in the tab of ctx (a chromedp
// context) and submits it: it waits for the form (input id="login" and
// id="password"), sets both fields and clicks id="submit-login". It does
// not wait for the redirect that follows; wait for the next page with
// WaitURL. A wrong password shows the form again with id="login-error".
//
//	err := harness.DexLogin(ctx, "ann@example.com", "pw-ann")
func DexLogin(ctx context.Context, email, password string) error {
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SetValue(chromedp.ID("login"), email),
		chromedp.SetValue(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("submit-login"), chromedp.NodeVisible),
	); err != nil {
		return fmt.Errorf("Dex login form: %w", err)
	}
	return nil
}
