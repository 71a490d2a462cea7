package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse-dev/gatehouse/assertion"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/portal"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/store"
)

// runInproc serves the config with the components `gatehouse serve` wires
// for the browser side (identity, portal.NewWeb: portal, app gates with
// the session check and authz, proxy.NewUpstream hops with the JWT
// assertion; the front door with TLS; the audit log) in this process, put
// together by buildWeb below the way cmd/gatehouse's wiring does. It is the fallback when the
// real binary cannot serve routes, and the process the CPU profile is
// taken from (the binary has no profiling endpoint). It runs until
// SIGTERM.
func runInproc(args []string) int {
	fs := flag.NewFlagSet("inproc", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "gatehouse config `FILE`")
	profile := fs.String("cpuprofile", "", "write a CPU profile to `FILE` until SIGTERM")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := inproc(*cfgPath, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "inproc:", err)
		return 1
	}
	return 0
}

func inproc(cfgPath, profile string) error {
	cfg, err := config.LoadFile(cfgPath)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	st, err := store.OpenBolt(filepath.Join(cfg.DataDir, "state.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "audit"), 0o700); err != nil {
		return err
	}
	al, err := audit.New(filepath.Join(cfg.DataDir, "audit", "audit.log"), audit.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer al.Close()
	kr, err := benchKeyring(cfg.Secrets.MasterKeyFile)
	if err != nil {
		return err
	}
	web, err := buildWeb(ctx, cfg, identity.Deps{Store: st, Audit: al, Logger: logger, Secrets: kr})
	if err != nil {
		return err
	}
	front, err := proxy.NewFront(proxy.FrontConfig{Config: cfg, Portal: web.Portal, Apps: web.Apps, Logger: logger})
	if err != nil {
		return err
	}
	// The front's metrics on the admin address, as serve has them: the
	// benchmark counts answers by status there.
	adminLn, err := net.Listen("tcp", cfg.Listen.Admin)
	if err != nil {
		return err
	}
	admin := &http.Server{Handler: promhttp.HandlerFor(front.Metrics(), promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = admin.Serve(adminLn) }()
	defer admin.Close()
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	return front.Serve(ctx)
}

// buildWeb is cmd/gatehouse's newIdentity and buildWeb for the browser side
// only (cmd is a main package and cannot be imported): the same
// constructors with the same arguments. When the wiring there changes,
// change it here too.
func buildWeb(ctx context.Context, cfg *config.Config, d identity.Deps) (*portal.Web, error) {
	sessions, err := identity.NewSessions(d, identity.SessionOptions{})
	if err != nil {
		return nil, err
	}
	users, err := identity.NewUsers(d)
	if err != nil {
		return nil, err
	}
	invites, err := identity.NewInvites(d)
	if err != nil {
		return nil, err
	}
	wa, err := identity.NewWebAuthn(d, identity.WebAuthnConfig{PublicURL: cfg.PublicURL, Enrollment: cfg.WebAuthn.Enrollment},
		users, sessions, invites)
	if err != nil {
		return nil, err
	}
	limiter, err := identity.NewLimiter(d)
	if err != nil {
		return nil, err
	}
	approvals, err := identity.NewApprovals(d, cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	codec, err := identity.NewCodec(ctx, d, 0)
	if err != nil {
		return nil, err
	}
	client, err := identity.SSOHTTPClient(cfg.SSO)
	if err != nil {
		return nil, err
	}
	oidc, err := identity.NewOIDC(ctx, d, cfg.SSO, strings.TrimSuffix(cfg.PublicURL, "/")+"/auth/callback", client)
	if err != nil {
		return nil, err
	}
	signer, err := assertion.NewSigner(ctx, assertion.Config{Store: d.Store, Secrets: d.Secrets, Issuer: cfg.PublicURL, Logger: d.Logger})
	if err != nil {
		return nil, err
	}
	return portal.NewWeb(portal.WebConfig{
		Config: cfg, OIDC: oidc, Sessions: sessions, WebAuthn: wa, Approvals: approvals, Limiter: limiter, Codec: codec, Audit: d.Audit,
		JWKS: signer.JWKS(), Logger: d.Logger,
		Hop: func(rt config.Route) (http.Handler, error) { return proxy.NewUpstream(rt, signer, d.Logger) },
	})
}
