package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/store"
)

// stateFile is the embedded store's file in data_dir.
const stateFile = "state.db"

// openStore opens the state store cfg names: Redis when the redis section
// is present (shared by every replica), otherwise the embedded bbolt file
// in data_dir. serve, the admin commands on a stopped server and rekey all
// open it here, so they cannot disagree about where state lives.
func openStore(cfg *config.Config, logger *slog.Logger) (store.Store, error) {
	if cfg.Redis == nil {
		st, err := store.OpenBolt(filepath.Join(cfg.DataDir, stateFile))
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return st, nil
	}
	opts, err := redisOptions(cfg.Redis)
	if err != nil {
		return nil, err
	}
	opts.Logger = logger
	st, err := store.OpenRedis(opts)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return st, nil
}

// redisOptions turns the redis section into store options, reading the
// password and the CA roots from their files.
func redisOptions(r *config.Redis) (store.RedisOptions, error) {
	opts := store.RedisOptions{Addr: r.Addr, Username: r.Username, DB: r.DB, Prefix: r.Prefix}
	if r.PasswordFile != "" {
		pw, err := readSecretFile("redis.password_file", r.PasswordFile)
		if err != nil {
			return opts, err
		}
		opts.Password = pw
	}
	if s := r.Sentinel; s != nil {
		opts.MasterName, opts.SentinelAddrs, opts.SentinelUsername = s.MasterName, s.Addrs, s.Username
		if s.PasswordFile != "" {
			pw, err := readSecretFile("redis.sentinel.password_file", s.PasswordFile)
			if err != nil {
				return opts, err
			}
			opts.SentinelPassword = pw
		}
	}
	if r.TLS != nil {
		tc, err := redisTLS(r)
		if err != nil {
			return opts, err
		}
		opts.TLS = tc
	}
	return opts, nil
}

// redisTLS builds the client TLS config for Redis. Verification is always
// on: whoever answers as Redis would hold every session and lock.
func redisTLS(r *config.Redis) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.TLS.ServerName}
	if tc.ServerName == "" {
		host, _, err := net.SplitHostPort(r.Addr)
		if err != nil {
			return nil, fmt.Errorf("redis.addr: %w", err)
		}
		tc.ServerName = host
	}
	if r.TLS.CAFile != "" {
		pem, err := os.ReadFile(r.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls.ca_file %s: no PEM certificate", r.TLS.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// openStoreDirect opens the store for an admin command when no server
// answers on the control socket. The embedded store is locked by a running
// server; Redis is shared and may be opened next to running replicas.
func openStoreDirect(cfg *config.Config, logger *slog.Logger) (store.Store, error) {
	st, err := openStore(cfg, logger)
	if errors.Is(err, store.ErrInUse) {
		return nil, fmt.Errorf("the store is held by a server that does not answer on %s: %w", controlPath(cfg), err)
	}
	return st, err
}
