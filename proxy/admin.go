package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyCheckTimeout bounds each readiness check.
const readyCheckTimeout = 2 * time.Second

// ReadyCheck is one condition of /readyz. Check returns nil when ready, or
// an error whose text is shown in the 503 response (so it must not carry
// secrets).
type ReadyCheck struct {
	Name  string
	Check func(context.Context) error
}

// AdminConfig configures NewAdmin.
type AdminConfig struct {
	// Addr is the address to listen on (listen.admin, which config
	// resolves to its loopback default). Required unless Listener is set:
	// the admin door never picks an address of its own.
	Addr string
	// Listener, if set, is used instead of listening on Addr.
	Listener net.Listener
	// Metrics is served at /metrics. Required. NewAdmin adds the Go runtime
	// and process collectors to it.
	Metrics *prometheus.Registry
	// Ready lists the conditions of /readyz, all of which must hold. An
	// empty list makes /readyz answer 503, never a vacuous 200.
	Ready []ReadyCheck
	// Logger receives operational logs. If nil, logs are discarded.
	Logger *slog.Logger
}

// Admin is the plain-HTTP admin listener: /healthz (the process is up),
// /readyz (every ReadyCheck passes) and /metrics. It answers GET and HEAD
// only.
type Admin struct {
	ln     net.Listener
	srv    *http.Server
	checks []ReadyCheck
	logger *slog.Logger

	shutdownOnce sync.Once
	shutdownErr  error
	done         chan struct{} // closed when Shutdown has finished
}

// NewAdmin binds the admin listener. It warns when the address is not
// loopback, since /metrics then reaches whoever can connect.
func NewAdmin(ac AdminConfig) (*Admin, error) {
	if ac.Metrics == nil {
		return nil, errors.New("admin: no metrics registry")
	}
	if ac.Listener == nil && ac.Addr == "" {
		return nil, errors.New("admin: listen.admin is required")
	}
	logger := ac.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := ac.Metrics.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("admin: register collector: %w", err)
			}
		}
	}
	a := &Admin{ln: ac.Listener, checks: ac.Ready, logger: logger, done: make(chan struct{})}
	if a.ln == nil {
		ln, err := net.Listen("tcp", ac.Addr)
		if err != nil {
			return nil, fmt.Errorf("admin: listen.admin: %w", err)
		}
		a.ln = ln
	}
	if ap, ok := a.ln.Addr().(*net.TCPAddr); ok && !ap.IP.IsLoopback() {
		logger.Warn("Admin listener is not on loopback: /metrics and /readyz are reachable from the network.", "addr", a.ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		adminText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("/readyz", a.serveReady)
	mux.Handle("/metrics", promhttp.HandlerFor(ac.Metrics, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}))
	a.srv = &http.Server{
		Handler:           adminOnlyGet(mux),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    8 << 10,
		// "OPTIONS *" reaches adminOnlyGet and is refused.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     log.New(&serverErrorLog{logger: logger}, "", 0),
	}
	return a, nil
}

// Addr is the admin listener's bound address.
func (a *Admin) Addr() net.Addr { return a.ln.Addr() }

// Serve serves until ctx is cancelled (then shuts down within 5s) or
// Shutdown is called.
func (a *Admin) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.srv.Serve(a.ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case <-a.done:
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("admin: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(sctx); serveErr == nil {
		serveErr = err
	}
	return serveErr
}

// Shutdown stops the admin listener; safe to call more than once.
func (a *Admin) Shutdown(ctx context.Context) error {
	a.shutdownOnce.Do(func() {
		if err := a.srv.Shutdown(ctx); err != nil {
			_ = a.srv.Close()
			a.shutdownErr = err
		}
		_ = a.ln.Close()
		close(a.done)
	})
	return a.shutdownErr
}

func (a *Admin) serveReady(w http.ResponseWriter, r *http.Request) {
	if len(a.checks) == 0 {
		adminText(w, http.StatusServiceUnavailable, "not ready: no readiness checks configured")
		return
	}
	var failed []string
	for _, c := range a.checks {
		ctx, cancel := context.WithTimeout(r.Context(), readyCheckTimeout)
		err := c.Check(ctx)
		cancel()
		if err != nil {
			failed = append(failed, c.Name+": "+err.Error())
		}
	}
	if len(failed) > 0 {
		msg := "not ready"
		for _, f := range failed {
			msg += "\n" + f
		}
		adminText(w, http.StatusServiceUnavailable, msg)
		return
	}
	adminText(w, http.StatusOK, "ready")
}

// adminOnlyGet refuses every method but GET and HEAD, and absolute-URI
// requests.
func adminOnlyGet(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			adminText(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		if len(r.RequestURI) == 0 || r.RequestURI[0] != '/' {
			adminText(w, http.StatusBadRequest, "bad request")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func adminText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}
