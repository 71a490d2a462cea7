package portal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/web"
)

// WebConfig is what NewWeb needs to assemble the browser side. The
// identity components are built once per process by cmd/gatehouse and
// shared with the SSH bastion and the admin commands.
type WebConfig struct {
	// Config is the validated configuration. Required.
	Config *config.Config
	// OIDC runs the SSO login (*identity.OIDC). Required.
	OIDC portalOIDC
	// Sessions keeps sessions and handoff codes (*identity.Sessions).
	// Required; it must also satisfy appSessions.
	Sessions interface {
		portalSessions
		appSessions
	}
	// WebAuthn runs the key ceremonies (*identity.WebAuthn). Required.
	WebAuthn portalWebAuthn
	// Approvals resolves SSH approvals (*identity.Approvals). Optional.
	Approvals portalApprovals
	// Limiter rate-limits login, assertion and approval. Required.
	Limiter portalLimiter
	// Codec seals cookies (*identity.Codec). Required.
	Codec sessionCodec
	// Audit records sign-ins, ceremonies, denials and approvals. Required.
	Audit portalAudit
	// JWKS serves the upstream assertion keys (assertion.Signer.JWKS).
	// Optional: nil answers 404.
	JWKS http.Handler
	// Hop returns the handler that carries a route's admitted requests to
	// its upstream (proxy.NewUpstream). Required when there are routes.
	Hop func(config.Route) (http.Handler, error)
	// Review turns on the reviewer console on the portal (recordings and
	// the Terminate hook). Optional: its zero value leaves it off.
	Review ReviewConfig
	// SignedOut, if set, is told of every sign-out on this portal after the
	// gates have forgotten the session (serve ends the person's WebSockets).
	SignedOut func(email string)
	// Logger receives operational messages; if nil, they are discarded.
	Logger *slog.Logger
}

// Web is the browser side of Gatehouse, ready for proxy.FrontConfig: the
// portal for public_url and one gate per route host.
type Web struct {
	// Portal serves the public_url host.
	Portal http.Handler
	// Apps maps each route's host (lower case) to its gate.
	Apps map[string]http.Handler

	hops []http.Handler // each route's upstream handler, for Close
}

// Close releases what the routes' upstream handlers hold (their idle
// connections to the upstreams), for a Web that a reload replaced or that
// never went into service. Requests still running finish.
func (w *Web) Close() {
	for _, h := range w.hops {
		if c, ok := h.(io.Closer); ok {
			_ = c.Close()
		}
	}
}

// NewWeb builds the portal and every route's gate over the shared identity
// components, and connects the portal's sign-outs to the gates' caches. It
// starts no goroutines; calling it again (on reload) builds fresh handlers
// over the same components, so sessions survive a reload.
func NewWeb(c WebConfig) (*Web, error) {
	cfg := c.Config
	if cfg == nil || c.Sessions == nil {
		return nil, errors.New("build web: Config and Sessions are required")
	}
	if len(cfg.Routes) > 0 && c.Hop == nil {
		return nil, errors.New("build web: Hop is required for routes")
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pages, err := web.Parse()
	if err != nil {
		return nil, fmt.Errorf("build web: %w", err)
	}
	var gates []*App
	portal, err := NewPortal(PortalConfig{
		Config: cfg, OIDC: c.OIDC, Sessions: c.Sessions, WebAuthn: c.WebAuthn, Approvals: c.Approvals, Limiter: c.Limiter,
		Codec: c.Codec, Audit: c.Audit, JWKS: c.JWKS, Pages: pages, Logger: logger.With("component", "portal"), Review: c.Review,
		Revoked: func(handle, email string) {
			for _, g := range gates {
				g.Forget(handle, email)
			}
			if c.SignedOut != nil {
				c.SignedOut(email)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("build web: %w", err)
	}
	w := &Web{Portal: portal, Apps: map[string]http.Handler{}}
	for _, rt := range cfg.Routes {
		hop, err := c.Hop(rt)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("build web: %w", err)
		}
		w.hops = append(w.hops, hop)
		app, err := NewApp(rt, hop, AppDeps{Config: cfg, Codec: c.Codec, Sessions: c.Sessions, Audit: c.Audit,
			Pages: pages, Logger: logger.With("component", "app")})
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("build web: %w", err)
		}
		w.Apps[strings.ToLower(rt.Host)] = app
		gates = append(gates, app)
	}
	return w, nil
}
