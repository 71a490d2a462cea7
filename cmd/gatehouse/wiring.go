package main

import (
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/store"
)

// deps is what serve hands to the functions that build the components.
type deps struct {
	cfg     *config.Config
	store   store.Store
	audit   auditLog
	logger  *slog.Logger
	metrics *prometheus.Registry
}

// version is this build's module version, or "devel".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// buildPortal returns the handler for the public_url host. Seam for the
// identity/portal wiring: until it is wired, nil, and the front shows its
// placeholder page.
func buildPortal(d deps) http.Handler { return nil }

// buildApps returns one handler per route host. Seam for the upstream
// reverse proxy wiring: until it is wired, no handler, and every configured
// route answers 503 "route not available" from Gatehouse (never a hop).
func buildApps(d deps) map[string]http.Handler { return nil }
