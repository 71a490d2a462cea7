package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/portal"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/sshgw"
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
	defer setGCPolicy(os.Getenv)()
	var level slog.LevelVar
	logger := newLogger(cfg.Log, stderr, &level)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, a second one kills the process at once.
		<-ctx.Done()
		stop()
	}()
	s := &server{path: *path, logger: logger, level: &level, stdout: stdout}
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
	stdout io.Writer                     // audit.stdout sink
	cfg    atomic.Pointer[config.Config] // the config in force; SIGHUP swaps it

	store   store.Store
	secrets *secrets.Keyring // the master keyring, opened once
	audit   auditLog
	front   *proxy.Front // nil when listen.https is off
	// web is the handlers the front serves; a reload swaps them while lock
	// messages read them (forgetAppSessions).
	web   atomic.Pointer[portal.Web]
	ssh   *sshgw.Server
	rec   *recording.Recorder
	admin *proxy.Admin
}

// run opens the state, builds the listeners and serves until ctx ends.
func (s *server) run(ctx context.Context) error {
	cfg := s.cfg.Load()
	if err := ensureDataDir(cfg.DataDir); err != nil {
		return err
	}
	kr, err := openSecrets(cfg, s.logger)
	if err != nil {
		return err
	}
	s.secrets = kr
	st, err := openStore(cfg, s.logger.With("component", "store"))
	if err != nil {
		return err
	}
	s.logger.Info("Opened the state store.", "store", fmt.Sprint(st))
	s.store = st
	defer func() {
		if err := st.Close(); err != nil {
			s.logger.Error("Closing the store failed.", "error", err)
		}
	}()

	al, err := openAudit(cfg, s.stdout, s.logger.With("component", "audit"))
	if err != nil {
		return err
	}
	s.audit = al
	defer func() {
		if err := al.Close(); err != nil {
			s.logger.Error("Closing the audit log failed.", "error", err)
		}
	}()

	reg := prometheus.NewRegistry()
	d := deps{cfg: cfg, store: st, audit: al, logger: s.logger, metrics: reg, secrets: kr}
	// The identity components are built once and shared by the control
	// socket's admin ops, the browser side and the SSH bastion.
	if d.ident, err = newIdentity(ctx, d); err != nil {
		return err
	}
	if d.rec, err = s.openRecorder(ctx, cfg, st, al); err != nil {
		return err
	}
	// The console's Terminate reaches the SSH bastion built below; a
	// sign-out reaches the front's WebSockets.
	d.terminate, d.signedOut = s.terminate, s.closeWebSockets
	ctl, ctlLn, err := serveControl(cfg, d.ident, d.rec, al, s.logger.With("component", "control"))
	if err != nil {
		return err
	}
	// Closed on every return, early ones included: a socket left behind
	// would make admin commands talk to a server that is gone.
	defer ctlLn.Close()
	ctl.Ops[rekeyOp] = s.rekey
	ready := []proxy.ReadyCheck{{Name: "store", Check: s.storeReady}}
	if cfg.Listen.HTTPS != "" {
		web, err := buildWeb(ctx, d)
		if err != nil {
			return err
		}
		s.web.Store(web)
		s.front, err = proxy.NewFront(proxy.FrontConfig{
			Config:  cfg,
			Portal:  web.Portal,
			Apps:    web.Apps,
			Logger:  s.logger.With("component", "front"),
			Metrics: reg,
			Version: version(),
			Audit:   d.audit,
			// Certificates and ACME accounts live in the store, sealed:
			// shared by replicas, and no private key in data_dir.
			CertStorage: certKV{st: st, kr: kr},
		})
		if err != nil {
			return err
		}
		ready = append(ready, proxy.ReadyCheck{Name: "https", Check: s.front.Ready})
	}
	// The SSH listener is bound before the admin listener reports ready.
	var sshSrv *sshgw.Server
	var sshLn net.Listener
	if cfg.Listen.SSH != "" {
		sshSrv, sshLn, err = startSSH(d)
		if err != nil {
			s.shutdownEarly(ctx)
			return err
		}
		defer sshLn.Close()
		s.ssh = sshSrv
	}
	s.admin, err = proxy.NewAdmin(proxy.AdminConfig{
		Addr:    cfg.Listen.Admin,
		Metrics: reg,
		Ready:   ready,
		Logger:  s.logger.With("component", "admin"),
	})
	if err != nil {
		s.shutdownEarly(ctx)
		return err
	}
	attrs := []any{"admin", s.admin.Addr().String(), "config", s.path}
	if sshLn != nil {
		attrs = append(attrs, "ssh", sshLn.Addr().String())
	}
	if s.front != nil {
		attrs = append(attrs, "https", s.front.HTTPSAddr().String())
		if a := s.front.HTTPAddr(); a != nil {
			attrs = append(attrs, "http", a.String())
		}
	}
	if err := s.auditEvent(ctx, "gatehouse.start", audit.Allow, ""); err != nil {
		// Fail closed: a gatehouse that cannot record must not run.
		s.shutdownEarly(ctx)
		return err
	}
	// Catch SIGHUP before announcing the start: its default action kills
	// the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s.logger.Info("Gatehouse started.", attrs...)

	g, gctx := errgroup.WithContext(ctx)
	if sshSrv != nil {
		g.Go(func() error { return sshSrv.Serve(sshLn) })
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return sshSrv.Shutdown(sctx)
		})
	}
	if s.front != nil {
		g.Go(func() error { return s.front.Serve(gctx) })
	}
	g.Go(func() error { return s.admin.Serve(gctx) })
	g.Go(func() error { return ctl.Serve(ctlLn) })
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return ctl.Shutdown(sctx)
	})
	g.Go(func() error { s.reloadOnHUP(gctx, hup); return nil })
	g.Go(func() error { s.sweepRecordings(gctx); return nil })
	g.Go(func() error { s.closeWebSocketsOnLock(gctx); return nil })
	g.Go(func() error { s.recheckWebSocketLocks(gctx, d.ident.locks); return nil })
	err = g.Wait()
	reason := "signal"
	if err != nil {
		reason = err.Error()
	}
	if aerr := s.auditEvent(context.WithoutCancel(ctx), "gatehouse.stop", "", reason); aerr != nil {
		s.logger.Error("Recording the stop in the audit log failed.", "error", aerr)
	}
	s.logger.Info("Gatehouse stopped.")
	return err
}

// shutdownEarly stops listeners built before a start failure.
func (s *server) shutdownEarly(ctx context.Context) {
	if s.front != nil {
		_ = s.front.Shutdown(ctx)
	}
	if s.admin != nil {
		_ = s.admin.Shutdown(ctx)
	}
}

// auditEvent records a lifecycle event of this process.
func (s *server) auditEvent(ctx context.Context, typ, decision, reason string) error {
	return s.audit.Log(ctx, audit.Event{
		Type:     typ,
		Resource: "gatehouse",
		Decision: decision,
		Reason:   reason,
		Details:  map[string]string{"config": s.path, "version": version()},
	})
}

// storeReady checks that the store answers.
func (s *server) storeReady(ctx context.Context) error {
	if _, err := s.store.Get(ctx, "readyz/probe"); err != nil && !errors.Is(err, store.ErrNotFound) {
		return errors.New("store not answering")
	}
	return nil
}

// reloadOnHUP reloads the config on every signal from hup until ctx ends.
func (s *server) reloadOnHUP(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			err := s.reload()
			decision, reason := audit.Allow, ""
			if err != nil {
				decision, reason = audit.Deny, err.Error()
				s.logger.Error("Config reload refused; the previous config stays in force.", "error", err)
			}
			if aerr := s.auditEvent(ctx, "config.reload", decision, reason); aerr != nil {
				s.logger.Error("Recording the reload in the audit log failed.", "error", aerr)
			}
		}
	}
}

// reload loads the config file again and applies it to both doors, or,
// if anything in it cannot be applied, to neither. Everything is built
// before anything is swapped; the SSH door, applied last, is checked before
// the web side is swapped, and if it still refuses, the web side is put
// back.
func (s *server) reload() error {
	var buf strings.Builder
	cfg, ok := loadConfig(s.path, &buf)
	if !ok {
		return errors.New(strings.TrimSpace(buf.String()))
	}
	old := s.cfg.Load()
	if err := config.RestartRequired(old, cfg); err != nil {
		return err
	}
	var web *portal.Web
	if s.front != nil {
		// The web side is rebuilt whole for the new config, over the same
		// store: sessions survive.
		d := deps{cfg: cfg, store: s.store, audit: s.audit, logger: s.logger, metrics: s.front.Metrics(),
			rec: s.rec, terminate: s.terminate, secrets: s.secrets}
		var err error
		if d.ident, err = newIdentity(context.Background(), d); err != nil {
			return err
		}
		if web, err = buildWeb(context.Background(), d); err != nil {
			return err
		}
	}
	// The web side that does not serve after this reload, the new one if
	// it is refused or the old one if it is applied, lets go of its
	// upstream connections.
	retired := web
	defer func() {
		if retired != nil {
			retired.Close()
		}
	}()
	if s.ssh != nil {
		if err := s.ssh.CheckReload(cfg); err != nil {
			return err
		}
	}
	if s.front != nil {
		if err := s.front.Reload(cfg, web.Portal, web.Apps); err != nil {
			return err
		}
	}
	if s.ssh != nil {
		if err := s.ssh.Reload(cfg); err != nil {
			if s.front != nil {
				if rerr := s.front.Reload(old, s.web.Load().Portal, s.web.Load().Apps); rerr != nil {
					s.logger.Error("Putting the web side back after a refused SSH reload failed.", "error", rerr)
					// The front still serves the new web side: it is the
					// one to track (sign-outs, the next reload's Close),
					// and the old one is retired.
					retired = s.web.Swap(web)
				}
			}
			return err
		}
	}
	if web != nil {
		retired = s.web.Swap(web)
	}
	s.cfg.Store(cfg)
	s.level.Set(logLevel(cfg.Log.Level))
	s.logger.Info("Config reloaded.", "config", s.path)
	return nil
}
