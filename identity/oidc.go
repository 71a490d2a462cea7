package identity

import (
	"context"
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// FlowTTL is how long a started OIDC login stays valid.
const FlowTTL = 10 * time.Minute

// Login is the identity an OIDC login established.
type Login struct {
	Email   string
	Subject string // the IdP's "sub"
	Groups  []string
	// ReturnTo is the return URL given to BeginLogin (already checked by the
	// caller with SafeReturn; identity stores it verbatim).
	ReturnTo string
	// At is when the login finished.
	At time.Time
}

// OIDC runs the authorization-code flow with PKCE (S256), state and nonce
// against one issuer. It is safe for concurrent use.
type OIDC struct {
	d Deps
}

// NewOIDC discovers the issuer cfg.Issuer with client (which should trust
// cfg.CARoots; see SSOHTTPClient) and returns an OIDC for the redirect URL
// (PUBLIC_URL + "/auth/callback"). The client secret is read from
// cfg.ClientSecretFile; it is never logged.
func NewOIDC(ctx context.Context, d Deps, cfg config.SSO, redirectURL string, client *http.Client) (*OIDC, error) {
	return nil, errNotReady
}

// SSOHTTPClient returns an HTTP client that trusts the system roots plus the
// PEM files in cfg.CARoots, with bounded timeouts, for talking to the IdP.
func SSOHTTPClient(cfg config.SSO) (*http.Client, error) {
	return nil, errNotReady
}

// BeginLogin starts a login. It stores state, nonce and the PKCE verifier
// server-side (single use, FlowTTL) and returns the IdP URL to redirect the
// browser to and a random flow value that the caller must set as a
// short-lived, HttpOnly cookie on the portal; FinishLogin requires it back,
// which binds the callback to the browser that started the login.
func (o *OIDC) BeginLogin(ctx context.Context, returnTo string) (authURL, flowCookie string, err error) {
	return "", "", errNotReady
}

// FinishLogin completes a login from the callback's state and code and the
// flow cookie. It consumes the stored flow (a second call with the same state
// fails), exchanges the code with the PKCE verifier, verifies the ID token
// (signature, issuer, audience, expiry, nonce), refuses email_verified=false
// and a missing email, and reads groups from the configured claim. Every
// failure is audited as "sso.login" deny and returned wrapping ErrForbidden
// or ErrNotFound; the error text is for logs, not for the browser.
func (o *OIDC) FinishLogin(ctx context.Context, state, code, flowCookie string) (*Login, error) {
	return nil, errNotReady
}
