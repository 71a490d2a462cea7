package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/assertion"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/portal"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/store"
)

// deps is what serve hands to the functions that build the components.
type deps struct {
	cfg     *config.Config
	store   store.Store
	audit   auditLog
	logger  *slog.Logger
	metrics *prometheus.Registry
	// ident is the process's identity components; nil until newIdentity.
	ident *identityParts
	// rec records SSH sessions and serves the reviewer console; nil in
	// admin commands that do not need it.
	rec *recording.Recorder
	// terminate ends a live SSH connection for the reviewer console.
	terminate func(ctx context.Context, sessionID, by string) (bool, error)
	// signedOut ends a person's WebSockets after a sign-out.
	signedOut func(email string)
	// secrets seals the SSH keys, the signing keys and the cookie key ring
	// at rest; serve opens it once (openSecrets).
	secrets *secrets.Keyring
}

// openSecrets opens the master keyring cfg names. When the master key is
// the default file in data_dir it is created on first use, with a loud
// warning: a copy of data_dir then carries the key with what it seals.
func openSecrets(cfg *config.Config, logger *slog.Logger) (*secrets.Keyring, error) {
	s := cfg.Secrets
	if s.MasterKeyFile == "" {
		return nil, errors.New("secrets: no master key (secrets.master_key_file, or data_dir for the default)")
	}
	if s.MasterKeyDefault {
		created, err := secrets.CreateKeyFile(s.MasterKeyFile)
		if err != nil {
			return nil, err
		}
		msg := "The master key is in data_dir, next to the keys it seals: a copy of data_dir reveals them. Set secrets.master_key_file to a file kept elsewhere (several replicas need one shared file)."
		if created {
			msg = "Created a new master key in data_dir. " + msg
		}
		logger.Warn(msg, "master_key_file", s.MasterKeyFile)
	}
	kr, err := secrets.Open(s.MasterKeyFile, s.PreviousMasterKeyFiles...)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return kr, nil
}

// version is this build's module version, or "devel".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// identityParts are the identity components of one process, built once by
// newIdentity and shared by the portal, the app gates, the SSH bastion and
// the admin operations. They are stateless wrappers over the store, so a
// reload that builds new ones over the same store keeps every session.
type identityParts struct {
	sessions  *identity.Sessions
	users     *identity.Users
	keys      *identity.KeyBindings
	locks     *identity.Locks
	approvals *identity.Approvals
	limiter   *identity.Limiter
	invites   *identity.Invites
	// codec, webauthn and oidc serve the browser side; they are nil when
	// the configuration has no SSO issuer (no routes, no browser sign-in).
	codec    *identity.Codec
	webauthn *identity.WebAuthn
	oidc     *identity.OIDC
}

// newIdentity builds the identity components for cfg over d's store. It
// does not need the IdP to answer: the OIDC issuer is discovered lazily
// (see identity.NewOIDC), and until it answers sign-ins get a 503 while
// existing sessions keep working.
func newIdentity(ctx context.Context, d deps) (*identityParts, error) {
	cfg := d.cfg
	logger := d.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	kr := d.secrets
	if kr == nil {
		// Admin commands on a stopped server build identity without serve's
		// keyring; the cookie codec needs one.
		var err error
		if kr, err = openSecrets(cfg, logger); err != nil {
			return nil, err
		}
	}
	idd := identity.Deps{Store: d.store, Audit: d.audit, Logger: logger.With("component", "identity"), Secrets: kr}
	var p identityParts
	var err error
	if p.sessions, err = identity.NewSessions(idd, identity.SessionOptions{}); err != nil {
		return nil, fmt.Errorf("identity: sessions: %w", err)
	}
	if p.users, err = identity.NewUsers(idd); err != nil {
		return nil, fmt.Errorf("identity: users: %w", err)
	}
	if p.keys, err = identity.NewKeyBindings(idd); err != nil {
		return nil, fmt.Errorf("identity: key bindings: %w", err)
	}
	// A lock revokes the person's sessions and unbinds their SSH keys.
	if p.locks, err = identity.NewLocks(idd, p.sessions, p.keys); err != nil {
		return nil, fmt.Errorf("identity: locks: %w", err)
	}
	if p.approvals, err = identity.NewApprovals(idd, cfg.PublicURL); err != nil {
		return nil, fmt.Errorf("identity: approvals: %w", err)
	}
	if p.limiter, err = identity.NewLimiter(idd); err != nil {
		return nil, fmt.Errorf("identity: limiter: %w", err)
	}
	if p.invites, err = identity.NewInvites(idd); err != nil {
		return nil, fmt.Errorf("identity: invites: %w", err)
	}
	if cfg.SSO.Issuer == "" {
		return &p, nil
	}
	if p.codec, err = identity.NewCodec(ctx, idd, 0); err != nil {
		return nil, fmt.Errorf("identity: cookie codec: %w", err)
	}
	if p.webauthn, err = identity.NewWebAuthn(idd, identity.WebAuthnConfig{PublicURL: cfg.PublicURL, Enrollment: cfg.WebAuthn.Enrollment},
		p.users, p.sessions, p.invites); err != nil {
		return nil, fmt.Errorf("identity: webauthn: %w", err)
	}
	// sso.ca_roots is how tests (and deployments) trust a private issuer.
	client, err := identity.SSOHTTPClient(cfg.SSO)
	if err != nil {
		return nil, fmt.Errorf("identity: sso client: %w", err)
	}
	redirect := strings.TrimSuffix(cfg.PublicURL, "/") + "/auth/callback"
	if p.oidc, err = identity.NewOIDC(ctx, idd, cfg.SSO, redirect, client); err != nil {
		return nil, fmt.Errorf("identity: oidc: %w", err)
	}
	return &p, nil
}

// buildWeb builds the portal for the public_url host and one gate per
// route host, each gate in front of its hop to the upstream, over the
// identity components in d.ident. On a configuration error serve refuses
// to start and a reload keeps the old handlers. With no SSO issuer there
// is no portal (the front shows its placeholder) and no route.
func buildWeb(ctx context.Context, d deps) (*portal.Web, error) {
	cfg := d.cfg
	if cfg.SSO.Issuer == "" {
		if len(cfg.Routes) > 0 {
			return nil, fmt.Errorf("build web: routes need sso.issuer")
		}
		return &portal.Web{}, nil
	}
	id := d.ident
	signer, err := assertion.NewSigner(ctx, assertion.Config{Store: d.store, Secrets: d.secrets, Issuer: cfg.PublicURL,
		Logger: d.logger.With("component", "assertion")})
	if err != nil {
		return nil, fmt.Errorf("build web: %w", err)
	}
	hopLogger := d.logger.With("component", "upstream")
	return portal.NewWeb(portal.WebConfig{
		Config: cfg, OIDC: id.oidc, Sessions: id.sessions, WebAuthn: id.webauthn, Approvals: id.approvals,
		Limiter: id.limiter, Codec: id.codec, Audit: d.audit, JWKS: signer.JWKS(), Logger: d.logger,
		Review: reviewConfig(d), SignedOut: d.signedOut,
		Hop: func(rt config.Route) (http.Handler, error) { return proxy.NewUpstream(rt, signer, hopLogger) },
	})
}

// reviewConfig turns the reviewer console on when there is a recorder,
// with Terminate and Lock.
func reviewConfig(d deps) portal.ReviewConfig {
	if d.rec == nil {
		return portal.ReviewConfig{}
	}
	// Playback of a tampered recording is audited, so the alerter sees it.
	rc := portal.ReviewConfig{Recordings: tamperAudited{Recorder: d.rec, audit: d.audit}, Terminate: d.terminate}
	if d.ident != nil && d.ident.locks != nil {
		// A reviewer's lock is the same as `gatehouse lock`, with the
		// reviewer as actor.
		rc.Lock = d.ident.locks.Lock
	}
	return rc
}
