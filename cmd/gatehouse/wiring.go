package main

import (
	"context"
	"log/slog"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/proxy"
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

// buildWeb builds the portal for the public_url host and one gate per
// route host. It does not need the IdP to answer (sign-ins fail closed
// with a 503 until it does; sessions that exist keep working); on a
// configuration error serve refuses to start and a reload keeps the old
// handlers.
func buildWeb(ctx context.Context, d deps) (*proxy.Web, error) {
	return proxy.BuildWeb(ctx, proxy.WebConfig{
		Config: d.cfg,
		Store:  d.store,
		Audit:  d.audit,
		Logger: d.logger,
	})
}

// newLocks builds the key bindings and the locks over them: a lock revokes
// the person's sessions and unbinds their SSH keys. The identity components
// are stateless wrappers over the store, so several instances share state.
func newLocks(d identity.Deps) (*identity.KeyBindings, *identity.Locks, error) {
	sessions, err := identity.NewSessions(d, identity.SessionOptions{})
	if err != nil {
		return nil, nil, err
	}
	keys, err := identity.NewKeyBindings(d)
	if err != nil {
		return nil, nil, err
	}
	locks, err := identity.NewLocks(d, sessions, keys)
	if err != nil {
		return nil, nil, err
	}
	return keys, locks, nil
}
