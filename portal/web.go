package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/web"
)

// WebConfig is what BuildWeb needs to assemble the browser side.
type WebConfig struct {
	// Config is the validated configuration. Required.
	Config *config.Config
	// Store keeps sessions, keys, codes and the signing key ring. Required.
	Store store.Store
	// Audit records sign-ins, ceremonies, denials and approvals. Required.
	Audit portalAudit
	// Logger receives operational messages; if nil, they are discarded.
	Logger *slog.Logger
	// SSOClient talks to the IdP. If nil, identity.SSOHTTPClient(cfg.SSO)
	// is used (system roots plus sso.ca_roots).
	SSOClient *http.Client
}

// Web is the browser side of Gatehouse, ready for FrontConfig: the portal
// for public_url and one gate per route host.
type Web struct {
	// Portal serves the public_url host. It is nil (an untyped nil
	// http.Handler, so the front shows its placeholder) when the
	// configuration has no SSO issuer, i.e. no routes and no targets.
	Portal http.Handler
	// Apps maps each route's host (lower case) to its gate.
	Apps map[string]http.Handler
	// Signer signs the upstream assertions; its JWKS is served by Portal.
	Signer *AssertionSigner
}

// BuildWeb builds the portal and every route's gate over shared identity
// components. It does not need the IdP to answer: the OIDC issuer is
// discovered lazily (see identity.NewOIDC), and until it answers sign-ins
// get a 503 while existing sessions keep working. It starts no goroutines;
// calling it again (on reload) builds fresh handlers over the same store,
// so sessions survive a reload.
func BuildWeb(ctx context.Context, c WebConfig) (*Web, error) {
	cfg := c.Config
	if cfg == nil || c.Store == nil || c.Audit == nil {
		return nil, fmt.Errorf("build web: Config, Store and Audit are required")
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SSO.Issuer == "" {
		if len(cfg.Routes) > 0 {
			return nil, fmt.Errorf("build web: routes need sso.issuer")
		}
		return &Web{}, nil
	}
	d := identity.Deps{Store: c.Store, Audit: c.Audit, Logger: logger.With("component", "identity")}
	codec, err := identity.NewCodec(ctx, d, 0)
	if err != nil {
		return nil, fmt.Errorf("build web: cookie codec: %w", err)
	}
	sessions, err := identity.NewSessions(d, identity.SessionOptions{})
	if err != nil {
		return nil, fmt.Errorf("build web: sessions: %w", err)
	}
	users, err := identity.NewUsers(d)
	if err != nil {
		return nil, fmt.Errorf("build web: users: %w", err)
	}
	invites, err := identity.NewInvites(d)
	if err != nil {
		return nil, fmt.Errorf("build web: invites: %w", err)
	}
	wa, err := identity.NewWebAuthn(d, identity.WebAuthnConfig{PublicURL: cfg.PublicURL, Enrollment: cfg.WebAuthn.Enrollment},
		users, sessions, invites)
	if err != nil {
		return nil, fmt.Errorf("build web: webauthn: %w", err)
	}
	approvals, err := identity.NewApprovals(d, cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("build web: approvals: %w", err)
	}
	limiter, err := identity.NewLimiter(d)
	if err != nil {
		return nil, fmt.Errorf("build web: limiter: %w", err)
	}
	client := c.SSOClient
	if client == nil {
		if client, err = identity.SSOHTTPClient(cfg.SSO); err != nil {
			return nil, fmt.Errorf("build web: sso client: %w", err)
		}
	}
	oidc, err := identity.NewOIDC(ctx, d, cfg.SSO, strings.TrimSuffix(cfg.PublicURL, "/")+"/auth/callback", client)
	if err != nil {
		return nil, fmt.Errorf("build web: oidc: %w", err)
	}
	signer, err := NewAssertionSigner(ctx, AssertionConfig{Store: c.Store, Issuer: cfg.PublicURL,
		Logger: logger.With("component", "assertion")})
	if err != nil {
		return nil, fmt.Errorf("build web: %w", err)
	}
	pages, err := web.Parse()
	if err != nil {
		return nil, fmt.Errorf("build web: %w", err)
	}
	var gates []*App
	portal, err := NewPortal(PortalConfig{
		Config: cfg, OIDC: oidc, Sessions: sessions, WebAuthn: wa, Approvals: approvals, Limiter: limiter,
		Codec: codec, Audit: c.Audit, JWKS: signer.JWKS(), Pages: pages, Logger: logger.With("component", "portal"),
		Revoked: func(handle, email string) {
			for _, g := range gates {
				g.Forget(handle, email)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("build web: %w", err)
	}
	w := &Web{Portal: portal, Apps: map[string]http.Handler{}, Signer: signer}
	for _, rt := range cfg.Routes {
		up, err := NewUpstream(rt, signer, logger.With("component", "upstream"))
		if err != nil {
			return nil, fmt.Errorf("build web: %w", err)
		}
		app, err := NewApp(rt, up, AppDeps{Config: cfg, Codec: codec, Sessions: sessions, Audit: c.Audit,
			Pages: pages, Logger: logger.With("component", "app")})
		if err != nil {
			return nil, fmt.Errorf("build web: %w", err)
		}
		w.Apps[strings.ToLower(rt.Host)] = app
		gates = append(gates, app)
	}
	return w, nil
}
