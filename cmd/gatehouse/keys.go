package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/sshgw"
	"github.com/gatehouse-dev/gatehouse/store"
)

// keysPrefix namespaces the sealed keys in the store: the SSH host key and
// CAs under keys/ssh/, the recording keys under keys/recording_*.
const keysPrefix = "keys/"

// storeKeys is the store as a secrets.Backend: SetNX creates, so replicas
// that start at once agree on one key.
type storeKeys struct{ st store.Store }

var _ secrets.Backend = storeKeys{}

func (s storeKeys) Get(ctx context.Context, name string) ([]byte, error) {
	b, err := s.st.Get(ctx, keysPrefix+name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s%s: %w", keysPrefix, name, fs.ErrNotExist)
	}
	return b, err
}

func (s storeKeys) SetNX(ctx context.Context, name string, value []byte) (bool, error) {
	return s.st.SetNX(ctx, keysPrefix+name, value, 0)
}

func (s storeKeys) Set(ctx context.Context, name string, value []byte) error {
	return s.st.Set(ctx, keysPrefix+name, value, 0)
}

// keyVault is where the deployment's secret keys (SSH host key and CAs,
// recording keys) live, sealed under kr: files in data_dir on a single
// host; with Redis, the shared store, so every replica uses the same keys.
// A host moving to Redis has its sealed files imported on first use, so
// the CAs targets and users trust stay the same. Plaintext key files of
// older releases are sealed and removed on first use either way. A nil kr
// (or, with Redis, a nil st) gives a nil vault, which every consumer
// refuses.
func keyVault(cfg *config.Config, st store.Store, kr *secrets.Keyring, logger *slog.Logger) *secrets.Vault {
	vc := secrets.VaultConfig{Keyring: kr, Backend: secrets.Dir(cfg.DataDir), PlainDir: cfg.DataDir, Logger: logger}
	if cfg.Redis != nil {
		if st == nil {
			return nil
		}
		vc.Backend, vc.Import = storeKeys{st: st}, secrets.Dir(cfg.DataDir)
	}
	v, err := secrets.NewVault(vc)
	if err != nil {
		return nil
	}
	return v
}

// allKeySpecs are every key a vault keeps, for rekey and migrate-store.
func allKeySpecs() []secrets.Spec {
	return append(sshgw.KeySpecs(), recording.KeySpecs()...)
}

// openKeyVault opens the keys for a command that runs without serve:
// the master keyring and, with Redis, the store (the embedded store is not
// needed: its keys are files). close releases what it opened.
func openKeyVault(cfg *config.Config, logger *slog.Logger) (v *secrets.Vault, closeFn func(), err error) {
	kr, err := openSecrets(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	var st store.Store
	closeFn = func() {}
	if cfg.Redis != nil {
		if st, err = openStore(cfg, logger); err != nil {
			return nil, nil, err
		}
		closeFn = func() { st.Close() }
	}
	return keyVault(cfg, st, kr, logger), closeFn, nil
}
