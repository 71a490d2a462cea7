package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// selfSignedHosts are the names the self-signed certificate covers.
func selfSignedHosts(rt *frontRoutes) []string {
	hs := rt.hosts()
	if !slices.Contains(hs, "localhost") {
		hs = append(hs, "localhost")
	}
	return hs
}

// setupCerts prepares the certificate source for cfg.TLS.Mode.
func (f *Front) setupCerts(cfg *config.Config, rt *frontRoutes) error {
	now := time.Now()
	switch cfg.TLS.Mode {
	case config.TLSModeFiles:
		c, err := loadKeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile, now)
		if err != nil {
			return fmt.Errorf("front: %w", err)
		}
		f.static = &staticCerts{}
		f.static.cert.Store(c)
		f.certs = f.static
		f.warnUncovered(c.Leaf.VerifyHostname, rt.hosts())
	case config.TLSModeSelfSigned:
		c, created, err := loadOrCreateSelfSigned(f.dataDir, selfSignedHosts(rt), now)
		if err != nil {
			return fmt.Errorf("front: %w", err)
		}
		f.static = &staticCerts{}
		f.static.cert.Store(c)
		f.certs = f.static
		f.warnSelfSigned(c.Leaf.Raw, created)
	case config.TLSModeACME:
		ls := acmeListeners{https: f.httpsLn.Addr()}
		if f.httpLn != nil {
			ls.http = f.httpLn.Addr()
		}
		a, err := newACMECerts(cfg, f.dataDir, f.certKV, ls, f.logger)
		if err != nil {
			return fmt.Errorf("front: %w", err)
		}
		f.acme = a
		f.certs = a
	default:
		return fmt.Errorf("front: tls.mode %q is not supported", cfg.TLS.Mode)
	}
	return nil
}

// warnSelfSigned logs, on every start, that the certificate is for demos.
func (f *Front) warnSelfSigned(der []byte, created bool) {
	f.logger.Warn("TLS MODE self_signed IS FOR DEMOS ONLY: browsers will warn and clients cannot verify this server. Use tls.mode acme or files in production.",
		"fingerprint_sha256", certFingerprint(der), "created", created,
		"cert_file", f.dataDir+"/"+selfSignedDir+"/"+selfSignedCertName)
}

// warnUncovered logs configured hosts that a files-mode certificate does
// not name; handshakes for them would fail verification in clients.
func (f *Front) warnUncovered(verify func(string) error, hosts []string) {
	for _, h := range hosts {
		if verify(h) != nil {
			f.logger.Warn("TLS certificate does not name a configured host.", "host", h)
		}
	}
}

// Reload applies a new configuration to a running front: host routing
// (public host, routes, and the handlers portal and apps, as in
// FrontConfig) and, for tls.mode files, the certificate files (read again
// even when their paths are unchanged). New hosts get a certificate: the
// self-signed one is remade, ACME starts obtaining one. Listen addresses,
// data_dir and TLS mode, version and ACME settings need a restart; a config
// changing them is refused. On any error nothing changes and the old
// configuration keeps serving.
func (f *Front) Reload(cfg *config.Config, portal http.Handler, apps map[string]http.Handler) error {
	if cfg == nil {
		return errors.New("reload: no config")
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	f.reloadMu.Lock()
	defer f.reloadMu.Unlock()
	if f.closing.Load() {
		return errors.New("reload: shutting down")
	}
	old := f.routes.Load()
	if err := config.RestartRequired(old.cfg, cfg); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	rt, err := newFrontRoutes(cfg, portal, apps)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	now := time.Now()
	switch cfg.TLS.Mode {
	case config.TLSModeFiles:
		c, err := loadKeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile, now)
		if err != nil {
			return fmt.Errorf("reload: %w", err)
		}
		f.warnUncovered(c.Leaf.VerifyHostname, rt.hosts())
		f.static.cert.Store(c)
	case config.TLSModeSelfSigned:
		if !slices.Equal(old.hosts(), rt.hosts()) {
			c, created, err := loadOrCreateSelfSigned(f.dataDir, selfSignedHosts(rt), now)
			if err != nil {
				return fmt.Errorf("reload: %w", err)
			}
			f.warnSelfSigned(c.Leaf.Raw, created)
			f.static.cert.Store(c)
		}
	case config.TLSModeACME:
		// Hosts dropped from the config keep their certificates until
		// restart; routing refuses them with 421.
		if f.serving.Load() && !slices.Equal(old.hosts(), rt.hosts()) {
			if err := f.acme.manage(f.life, rt.hosts()); err != nil {
				return fmt.Errorf("reload: %w", err)
			}
		}
	}
	f.routes.Store(rt)
	f.shutdownTimeout.Store(int64(cfg.ShutdownTimeout.D()))
	// A WebSocket was admitted under the old route; the guard does not know
	// the person's groups to judge it again, so every tunnel on a route
	// that changed or went away ends, and its client reconnects through the
	// gate under the new policy.
	changed := changedRouteHosts(old.cfg, cfg)
	if n := f.ws.closeMatching(func(_, host string) bool { return changed[host] }); n > 0 {
		f.logger.Info("Closed WebSockets on routes the reload changed.", "count", n)
	}
	return nil
}

// changedRouteHosts returns the (lower-case) hosts of old's routes that
// cur removes or changes.
func changedRouteHosts(old, cur *config.Config) map[string]bool {
	next := map[string]config.Route{}
	for _, r := range cur.Routes {
		next[strings.ToLower(r.Host)] = r
	}
	changed := map[string]bool{}
	for _, r := range old.Routes {
		h := strings.ToLower(r.Host)
		if n, ok := next[h]; !ok || !reflect.DeepEqual(n, r) {
			changed[h] = true
		}
	}
	return changed
}
