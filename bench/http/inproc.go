package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/store"
)

// runInproc serves the config's routes with the same components
// `gatehouse serve` wires for an app host (front door with TLS, the app
// gate with the session cookie check and authz, the upstream proxy with
// the JWT assertion), in this process. It is the fallback when the real
// binary cannot serve routes yet, and the process the CPU profile is taken
// from. It runs until SIGTERM.
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
	d := identity.Deps{Store: st, Audit: al, Logger: logger}
	codec, err := identity.NewCodec(ctx, d, 0)
	if err != nil {
		return err
	}
	sessions, err := identity.NewSessions(d, identity.SessionOptions{})
	if err != nil {
		return err
	}
	signer, err := proxy.NewAssertionSigner(ctx, proxy.AssertionConfig{Store: st, Issuer: cfg.PublicURL, Logger: logger})
	if err != nil {
		return err
	}
	apps := map[string]http.Handler{}
	for _, r := range cfg.Routes {
		up, err := proxy.NewUpstream(r, signer, logger)
		if err != nil {
			return err
		}
		app, err := proxy.NewApp(r, up, proxy.AppDeps{Config: cfg, Codec: codec, Sessions: sessions, Audit: al, Logger: logger})
		if err != nil {
			return err
		}
		apps[r.Host] = app
	}
	front, err := proxy.NewFront(proxy.FrontConfig{Config: cfg, Apps: apps, Logger: logger})
	if err != nil {
		return err
	}
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
