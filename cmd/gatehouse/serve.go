package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/store"
)

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config `FILE`")
	if code, ok := parseFlags(fs, args, "serve --config FILE"); !ok {
		return code
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		fmt.Fprintln(stderr, "gatehouse: refusing to start with an invalid config")
		return 1
	}
	var level slog.LevelVar
	logger := newLogger(cfg.Log, stderr, &level)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, a second one kills the process at once.
		<-ctx.Done()
		stop()
	}()
	s := &server{path: *path, logger: logger, level: &level}
	s.cfg.Store(cfg)
	if err := s.run(ctx); err != nil {
		logger.Error("Gatehouse stopped with an error.", "error", err)
		return 1
	}
	return 0
}

// server is one `gatehouse serve` process: the components it built and the
// config they currently run with.
type server struct {
	path   string
	logger *slog.Logger
	level  *slog.LevelVar
	cfg    atomic.Pointer[config.Config] // the config in force; SIGHUP swaps it

	store store.Store
	front *proxy.Front // nil when listen.https is off
	admin *proxy.Admin
}

// run opens the state, builds the listeners and serves until ctx ends.
func (s *server) run(ctx context.Context) error {
	cfg := s.cfg.Load()
	if err := ensureDataDir(cfg.DataDir); err != nil {
		return err
	}
	st, err := store.OpenBolt(filepath.Join(cfg.DataDir, "state.db"))
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	s.store = st
	defer func() {
		if err := st.Close(); err != nil {
			s.logger.Error("Closing the store failed.", "error", err)
		}
	}()

	reg := prometheus.NewRegistry()
	d := deps{cfg: cfg, store: st, logger: s.logger, metrics: reg}
	ready := []proxy.ReadyCheck{{Name: "store", Check: s.storeReady}}
	if cfg.Listen.HTTPS != "" {
		s.front, err = proxy.NewFront(proxy.FrontConfig{
			Config:  cfg,
			Portal:  buildPortal(d),
			Apps:    buildApps(d),
			Logger:  s.logger.With("component", "front"),
			Metrics: reg,
		})
		if err != nil {
			return err
		}
		ready = append(ready, proxy.ReadyCheck{Name: "https", Check: s.front.Ready})
	}
	s.admin, err = proxy.NewAdmin(proxy.AdminConfig{
		Addr:    cfg.Listen.Admin,
		Metrics: reg,
		Ready:   ready,
		Logger:  s.logger.With("component", "admin"),
	})
	if err != nil {
		if s.front != nil {
			_ = s.front.Shutdown(ctx)
		}
		return err
	}
	attrs := []any{"admin", s.admin.Addr().String(), "config", s.path}
	if s.front != nil {
		attrs = append(attrs, "https", s.front.HTTPSAddr().String())
		if a := s.front.HTTPAddr(); a != nil {
			attrs = append(attrs, "http", a.String())
		}
	}
	s.logger.Info("Gatehouse started.", attrs...)

	g, gctx := errgroup.WithContext(ctx)
	if s.front != nil {
		g.Go(func() error { return s.front.Serve(gctx) })
	}
	g.Go(func() error { return s.admin.Serve(gctx) })
	g.Go(func() error { s.reloadOnHUP(gctx); return nil })
	err = g.Wait()
	s.logger.Info("Gatehouse stopped.")
	return err
}

// storeReady checks that the store answers.
func (s *server) storeReady(ctx context.Context) error {
	if _, err := s.store.Get(ctx, "readyz/probe"); err != nil && !errors.Is(err, store.ErrNotFound) {
		return errors.New("store not answering")
	}
	return nil
}

// reloadOnHUP reloads the config on every SIGHUP until ctx ends.
func (s *server) reloadOnHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := s.reload(); err != nil {
				s.logger.Error("Config reload refused; the previous config stays in force.", "error", err)
			}
		}
	}
}

// reload loads the config file again and applies it only if it validates;
// otherwise nothing changes.
func (s *server) reload() error {
	var buf strings.Builder
	cfg, ok := loadConfig(s.path, &buf)
	if !ok {
		return errors.New(strings.TrimSpace(buf.String()))
	}
	if s.front != nil {
		d := deps{cfg: cfg, store: s.store, logger: s.logger, metrics: s.front.Metrics()}
		if err := s.front.Reload(cfg, buildPortal(d), buildApps(d)); err != nil {
			return err
		}
	}
	s.cfg.Store(cfg)
	s.level.Set(logLevel(cfg.Log.Level))
	s.logger.Info("Config reloaded.", "config", s.path)
	return nil
}
