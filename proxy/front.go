// Package proxy is Gatehouse's HTTPS front door: strict TLS with
// certificates from files, a self-signed demo certificate or ACME
// (certmagic), routing by Host to the portal or a route's application,
// security headers, the plain-HTTP redirect and ACME challenge listener, the
// admin listener (/healthz, /readyz, /metrics), and the hop that carries an
// admitted request to its upstream with the identity headers and the signed
// assertion (Upstream). What people see in a browser (the portal and the
// gate in front of each route) is package portal's; it reaches the front as
// plain http.Handlers.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/config"
)

// Limits of the HTTPS and HTTP listeners. The request body and response
// writes have their own deadlines (front_body.go); there is deliberately no
// ReadTimeout or WriteTimeout, which would cut WebSockets, long uploads and
// event streams at a fixed age.
const (
	// frontReadHeaderTimeout bounds the TLS handshake and the request
	// header: slowloris on headers ends here.
	frontReadHeaderTimeout = 10 * time.Second
	// frontIdleTimeout closes keep-alive connections with no request.
	frontIdleTimeout = 2 * time.Minute
	// frontMaxHeaderBytes bounds a request header block (HTTP/1.1) and
	// the header list of an HTTP/2 request, CONTINUATION frames included.
	frontMaxHeaderBytes = 32 << 10
)

// FrontConfig configures NewFront.
type FrontConfig struct {
	// Config is the validated configuration. Required.
	Config *config.Config
	// Portal serves the public_url host. If nil, a placeholder page does.
	// Front adds SecurityHeaders to it.
	Portal http.Handler
	// Apps serves each route, keyed by the route's host. A route without an
	// entry answers 503 from Gatehouse; a key that is not a route host is an
	// error.
	Apps map[string]http.Handler
	// Logger receives operational logs. If nil, logs are discarded.
	Logger *slog.Logger
	// Metrics is the registry the front registers its metrics in. If nil,
	// NewFront creates a fresh one (never the global default registry); see
	// Front.Metrics.
	Metrics *prometheus.Registry
	// DataDir holds the self-signed certificate and certmagic's storage. If
	// empty, Config.DataDir.
	DataDir string
	// Version labels gatehouse_build_info. If empty, the build's module
	// version is used.
	Version string
	// HTTPSListener and HTTPListener, if set, are used instead of listening
	// on Config.Listen.HTTPS and Config.Listen.HTTP (tests, socket
	// activation). Front owns and closes them.
	HTTPSListener net.Listener
	HTTPListener  net.Listener
	// Audit receives the front's refusals (paths that cannot be
	// canonicalised, WebSocket origins, over-cap WebSockets) as audit
	// events. If nil, they are only logged.
	Audit FrontAudit
	// MaxConnsPerSource caps open HTTPS connections from one source (an
	// IPv4 address or an IPv6 /64). Zero: DefaultMaxConnsPerSource.
	MaxConnsPerSource int
	// MaxConns caps open HTTPS connections in total. Zero:
	// DefaultMaxConns.
	MaxConns int
	// MaxWebSocketsPerSession caps the WebSockets one person has open at
	// once. Zero: DefaultMaxWebSocketsPerSession.
	MaxWebSocketsPerSession int
	// MaxWebSockets caps open WebSockets in total. Zero:
	// DefaultMaxWebSockets.
	MaxWebSockets int
	// CertStorage, if set, holds ACME certificates, accounts and the
	// locks around ordering them (tls.mode acme), so replicas sharing a
	// store share them and never order the same certificate twice. If
	// nil, they are files under DataDir.
	CertStorage CertKV
}

// Front is the HTTPS front door. Create it with NewFront, run it with Serve,
// stop it with Shutdown (or by cancelling Serve's context).
type Front struct {
	logger          *slog.Logger
	registry        *prometheus.Registry
	metrics         *frontMetrics
	dataDir         string
	certKV          CertKV       // nil: certmagic files under dataDir
	shutdownTimeout atomic.Int64 // nanoseconds; Reload may change it
	tlsConf         *tls.Config
	tickets         *ticketRotator
	static          *staticCerts // files and self_signed modes; else nil
	acme            *acmeCerts   // acme mode; else nil
	certs           frontCerts
	httpsLn         net.Listener
	httpLn          net.Listener // nil when listen.http is off
	httpsSrv        *http.Server
	httpSrv         *http.Server // nil when listen.http is off
	routes          atomic.Pointer[frontRoutes]
	audit           FrontAudit // nil: refusals are only logged
	ws              *wsGuard
	bodyGrace       time.Duration // frontBodyGrace; tests shorten it

	// life bounds background work (ticket rotation, ACME); Shutdown
	// cancels it.
	life    context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup // background goroutines started by Serve
	serving atomic.Bool
	closing atomic.Bool

	reloadMu     sync.Mutex // serializes Reload
	shutdownOnce sync.Once
	shutdownErr  error         // set once, before done is closed
	done         chan struct{} // closed when Shutdown has finished
}

// NewFront validates fc, binds the listeners and loads or creates the
// certificate (ACME certificates are obtained once Serve runs). It starts no
// goroutines.
func NewFront(fc FrontConfig) (*Front, error) {
	cfg := fc.Config
	if cfg == nil {
		return nil, errors.New("front: no config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("front: invalid config: %w", err)
	}
	if cfg.Listen.HTTPS == "" && fc.HTTPSListener == nil {
		return nil, errors.New("front: listen.https is not set")
	}
	logger := fc.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &Front{
		logger:    logger,
		registry:  fc.Metrics,
		dataDir:   fc.DataDir,
		certKV:    fc.CertStorage,
		httpsLn:   fc.HTTPSListener,
		httpLn:    fc.HTTPListener,
		audit:     fc.Audit,
		bodyGrace: frontBodyGrace,
		done:      make(chan struct{}),
	}
	built := false
	defer func() {
		if !built {
			f.closeListeners()
		}
	}()
	var err error
	if f.dataDir == "" {
		f.dataDir = cfg.DataDir
	}
	f.shutdownTimeout.Store(int64(cfg.ShutdownTimeout.D()))
	if f.registry == nil {
		f.registry = prometheus.NewRegistry()
	}
	if f.metrics, err = newFrontMetrics(f.registry, fc.Version); err != nil {
		return nil, err
	}
	f.ws = newWSGuard(orDefault(fc.MaxWebSocketsPerSession, DefaultMaxWebSocketsPerSession),
		orDefault(fc.MaxWebSockets, DefaultMaxWebSockets), func(n int) { f.metrics.websockets.Set(float64(n)) })
	rt, err := newFrontRoutes(cfg, fc.Portal, fc.Apps)
	if err != nil {
		return nil, fmt.Errorf("front: %w", err)
	}
	f.routes.Store(rt)
	if err := f.listen(cfg); err != nil {
		return nil, err
	}
	cm, err := newConnMetrics(f.registry)
	if err != nil {
		return nil, fmt.Errorf("register front metrics: %w", err)
	}
	f.httpsLn = newCapListener(f.httpsLn, orDefault(fc.MaxConnsPerSource, DefaultMaxConnsPerSource),
		orDefault(fc.MaxConns, DefaultMaxConns), cm)
	if err := f.setupCerts(cfg, rt); err != nil {
		return nil, err
	}
	if f.tlsConf, err = newTLSPolicy(cfg.TLS, f.certs.GetCertificate); err != nil {
		return nil, err
	}
	f.tickets = newTicketRotator(f.tlsConf)
	f.life, f.stop = context.WithCancel(context.Background())
	f.httpsSrv = f.newServer(f, f.metrics.handshakeFailures)
	// acme-tls/1 connections only exist to complete the TLS-ALPN-01
	// handshake; there is nothing to serve on them.
	f.httpsSrv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		acmeTLSALPN: func(*http.Server, *tls.Conn, http.Handler) {},
	}
	f.httpsSrv.HTTP2 = frontHTTP2Config()
	f.httpsSrv.Protocols = new(http.Protocols)
	f.httpsSrv.Protocols.SetHTTP1(true)
	f.httpsSrv.Protocols.SetHTTP2(true)
	if f.httpLn != nil {
		f.httpSrv = f.newServer(http.HandlerFunc(f.serveHTTPRedirect), nil)
	}
	built = true
	return f, nil
}

// listen binds the HTTPS and optional HTTP listeners not passed in.
func (f *Front) listen(cfg *config.Config) error {
	var err error
	if f.httpsLn == nil {
		if f.httpsLn, err = net.Listen("tcp", cfg.Listen.HTTPS); err != nil {
			return fmt.Errorf("front: listen.https: %w", err)
		}
	}
	if f.httpLn == nil && cfg.Listen.HTTP != "" {
		if f.httpLn, err = net.Listen("tcp", cfg.Listen.HTTP); err != nil {
			return fmt.Errorf("front: listen.http: %w", err)
		}
	}
	return nil
}

func (f *Front) closeListeners() {
	for _, ln := range []net.Listener{f.httpsLn, f.httpLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// newServer returns an http.Server with the front's limits, its error log
// routed to slog.
func (f *Front) newServer(h http.Handler, handshakeFailures prometheus.Counter) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: frontReadHeaderTimeout,
		IdleTimeout:       frontIdleTimeout,
		MaxHeaderBytes:    frontMaxHeaderBytes,
		// "OPTIONS *" reaches ServeHTTP, which refuses it like any
		// request target that is not a path.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     log.New(&serverErrorLog{logger: f.logger, handshakeFailures: handshakeFailures}, "", 0),
	}
}

// HTTPSAddr is the bound address of the HTTPS listener.
func (f *Front) HTTPSAddr() net.Addr { return f.httpsLn.Addr() }

// HTTPAddr is the bound address of the plain HTTP listener, or nil.
func (f *Front) HTTPAddr() net.Addr {
	if f.httpLn == nil {
		return nil
	}
	return f.httpLn.Addr()
}

// Metrics returns the registry holding the front's metrics, for the admin
// listener and for other components to register in.
func (f *Front) Metrics() *prometheus.Registry { return f.registry }

// Ready reports nil when the front serves HTTPS with a certificate, and
// otherwise why not.
func (f *Front) Ready(context.Context) error {
	switch {
	case f.closing.Load():
		return errors.New("shutting down")
	case !f.serving.Load():
		return errors.New("https listener not serving yet")
	}
	return f.certs.ready()
}

// Serve serves HTTPS (and plain HTTP when configured) until ctx is
// cancelled, then shuts down gracefully within the configured
// shutdown_timeout. It also returns, with Shutdown's result, when Shutdown
// is called, and with an error if a listener fails.
func (f *Front) Serve(ctx context.Context) error {
	if f.closing.Load() || !f.serving.CompareAndSwap(false, true) {
		return errors.New("front: Serve called twice or after Shutdown")
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.tickets.run(f.life)
	}()
	errc := make(chan error, 2)
	go func() { errc <- f.httpsSrv.Serve(tls.NewListener(f.httpsLn, f.tlsConf)) }()
	if f.httpSrv != nil {
		go func() { errc <- f.httpSrv.Serve(f.httpLn) }()
	}
	var serveErr error
	if f.acme != nil {
		serveErr = f.acme.manage(f.life, f.routes.Load().hosts())
	}
	if serveErr == nil {
		select {
		case <-ctx.Done():
		case <-f.done:
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				serveErr = fmt.Errorf("front: %w", err)
			}
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(f.shutdownTimeout.Load()))
	defer cancel()
	if err := f.Shutdown(sctx); serveErr == nil {
		serveErr = err
	}
	return serveErr
}

// Shutdown stops accepting connections, lets in-flight requests finish
// until ctx ends, then closes what remains and stops background work. It is
// safe to call more than once and from several goroutines; every call
// returns the first call's result. WebSockets tunnelled by the hop are
// closed at once.
func (f *Front) Shutdown(ctx context.Context) error {
	f.shutdownOnce.Do(func() {
		f.closing.Store(true)
		// Hijacked connections are unknown to http.Server.Shutdown.
		f.ws.closeAll()
		var errs []error
		for _, s := range []*http.Server{f.httpsSrv, f.httpSrv} {
			if s == nil {
				continue
			}
			if err := s.Shutdown(ctx); err != nil {
				errs = append(errs, err)
				_ = s.Close()
			}
		}
		f.closeListeners()
		f.stop()
		f.wg.Wait()
		if f.acme != nil {
			f.acme.stop()
		}
		f.shutdownErr = errors.Join(errs...)
		close(f.done)
	})
	return f.shutdownErr
}

// orDefault returns v, or def when v is zero or negative.
func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}
