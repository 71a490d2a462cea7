package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/store"
)

// runInproc serves the config with the components `gatehouse serve` wires
// for the browser side (proxy.BuildWeb: portal, app gates with the session
// check and authz, upstream proxies with the JWT assertion; the front door
// with TLS; the audit log) in this process. It is the fallback when the
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
	web, err := proxy.BuildWeb(ctx, proxy.WebConfig{Config: cfg, Store: st, Audit: al, Logger: logger})
	if err != nil {
		return err
	}
	front, err := proxy.NewFront(proxy.FrontConfig{Config: cfg, Portal: web.Portal, Apps: web.Apps, Logger: logger})
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
