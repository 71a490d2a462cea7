package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/assertion"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/control"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/store"
)

// rekeyOp is the control socket command a running server answers.
const rekeyOp = "rekey"

// sealedValues are the store entries kept sealed, each with its purpose.
var sealedValues = []struct{ key, purpose string }{
	{assertion.KeysStoreKey, assertion.KeysPurpose},
	{identity.CookieKeysStoreKey, identity.CookieKeysPurpose},
}

// cmdRekey is `gatehouse rekey --config FILE`: every sealed secret (the
// SSH and recording keys, in data_dir or with Redis in the store, and the
// key rings in the store) is sealed
// again with secrets.master_key_file, so that the previous master keys can
// be dropped. A running server does it through the control socket with
// its own keyring; otherwise the store is opened directly.
func cmdRekey(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rekey", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config `FILE`")
	if code, ok := parseFlags(fs, args, "rekey --config FILE"); !ok {
		return code
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := rekeyDeployment(ctx, cfg, stderr)
	fmt.Fprint(stdout, out)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse rekey:", err)
		return 1
	}
	return 0
}

func rekeyDeployment(ctx context.Context, cfg *config.Config, stderr io.Writer) (string, error) {
	out, err := control.Call(ctx, controlPath(cfg), rekeyOp, nil)
	if !errors.Is(err, control.ErrNoServer) {
		return out, err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	kr, err := openSecrets(cfg, logger)
	if err != nil {
		return "", err
	}
	st, err := openStoreDirect(cfg, logger)
	if err != nil {
		return "", err
	}
	defer st.Close()
	return reseal(ctx, keyVault(cfg, st, kr, logger), st, kr)
}

// rekey is the control op: reseal with the running server's keyring.
func (s *server) rekey(ctx context.Context, _ []string) (string, error) {
	return reseal(ctx, keyVault(s.cfg.Load(), s.store, s.secrets, s.logger), s.store, s.secrets)
}

// reseal seals every sealed secret again with kr's current master key
// (and seals any plaintext one left by an older release) and says what it
// rewrote.
func reseal(ctx context.Context, v *secrets.Vault, st store.Store, kr *secrets.Keyring) (string, error) {
	if v == nil {
		return "", errors.New("no master keyring")
	}
	keys, err := v.Reseal(ctx, allKeySpecs()...)
	if err != nil {
		return "", fmt.Errorf("keys: %w", err)
	}
	values := 0
	for _, v := range sealedValues {
		raw, err := st.Get(ctx, v.key)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", v.key, err)
		}
		out, changed, err := kr.Reseal(v.purpose, raw)
		if err != nil {
			return "", fmt.Errorf("%s: %w", v.key, err)
		}
		if !changed {
			continue
		}
		// A replica rotating the ring meanwhile sealed it with the current
		// key already (it reseals what it loads), so losing the race is fine.
		if _, err := st.CompareAndSwap(ctx, v.key, raw, out, 0); err != nil {
			return "", fmt.Errorf("%s: %w", v.key, err)
		}
		values++
	}
	certs, err := resealCerts(ctx, st, kr)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Resealed %d keys (SSH, recording), %d stored key rings and %d certificate files with the current master key.\n", keys, values, certs), nil
}

// resealCerts seals certmagic's files (certificates, their private keys,
// ACME accounts; see certKV) again with the current master key and returns
// how many it rewrote. A file certmagic replaced meanwhile is sealed with
// the current key already, so losing that race is fine.
func resealCerts(ctx context.Context, st store.Store, kr *secrets.Keyring) (int, error) {
	kvs, err := st.List(ctx, proxy.CertDataPrefix)
	if err != nil {
		return 0, fmt.Errorf("certificates: %w", err)
	}
	n := 0
	for _, kv := range kvs {
		out, changed, err := kr.Reseal(certPurpose(kv.Key), kv.Value)
		if err != nil {
			return n, fmt.Errorf("%s: %w", kv.Key, err)
		}
		if !changed {
			continue
		}
		if _, err := st.CompareAndSwap(ctx, kv.Key, kv.Value, out, 0); err != nil {
			return n, fmt.Errorf("%s: %w", kv.Key, err)
		}
		n++
	}
	return n, nil
}
