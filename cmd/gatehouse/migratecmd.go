package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/store"
)

// migrateTimeout bounds the whole copy: a Redis that stops answering ends
// the command with an error rather than a hang.
const migrateTimeout = 10 * time.Minute

// cmdMigrateStore is `gatehouse migrate-store --config FILE --to-redis
// ADDR`: it copies the embedded store of FILE's data_dir, every live key
// with its remaining lifetime, into an empty namespace of a Redis. It needs
// the store to itself, so it refuses while serve runs: a copy taken while
// sessions and approvals still change would be stale the moment it ends.
func cmdMigrateStore(args []string, stdout, stderr io.Writer) int {
	const synopsis = "migrate-store --config FILE --to-redis ADDR [--username U] [--password-file F] [--db N] [--prefix P]"
	fs := flag.NewFlagSet("migrate-store", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config `FILE`")
	opts := store.RedisOptions{}
	fs.StringVar(&opts.Addr, "to-redis", "", "Redis `ADDR` (host:port) to copy into")
	fs.StringVar(&opts.Username, "username", "", "Redis ACL `USER`")
	passwordFile := fs.String("password-file", "", "`FILE` holding the Redis password")
	fs.IntVar(&opts.DB, "db", 0, "Redis database `N` (0-15)")
	fs.StringVar(&opts.Prefix, "prefix", config.DefaultRedisPrefix, "key namespace `P` in Redis (redis.prefix)")
	if code, ok := parseFlags(fs, args, synopsis); !ok {
		return code
	}
	if opts.Addr == "" || opts.DB < 0 || opts.DB > 15 {
		fmt.Fprintf(stderr, "usage: gatehouse %s\n", synopsis)
		return 2
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return 1
	}
	if *passwordFile != "" {
		pw, err := readSecretFile("--password-file", *passwordFile)
		if err != nil {
			fmt.Fprintln(stderr, "gatehouse migrate-store:", err)
			return 1
		}
		opts.Password = pw
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	out, err := migrateStore(cfg, opts, logger)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse migrate-store:", err)
		return 1
	}
	fmt.Fprint(stdout, out)
	return 0
}

// migrateStore copies cfg's embedded store into the Redis of opts, then
// the sealed keys of data_dir (so the replicas keep this host's SSH CAs and
// recording keys), and describes what it copied.
func migrateStore(cfg *config.Config, opts store.RedisOptions, logger *slog.Logger) (string, error) {

	src := filepath.Join(cfg.DataDir, "state.db")
	if _, err := os.Stat(src); err != nil {
		// Opening would create an empty store and "migrate" nothing.
		return "", fmt.Errorf("embedded store: %w", err)
	}
	b, err := store.OpenBolt(src)
	if errors.Is(err, store.ErrInUse) {
		return "", fmt.Errorf("%s is held by a running gatehouse; stop serve (every replica on this data_dir) first: %w", src, err)
	}
	if err != nil {
		return "", err
	}
	defer b.Close()
	// The keys are checked (opened) as they are copied: open the keyring
	// first, so a missing master key fails before anything is copied.
	kr, err := openSecrets(cfg, logger)
	if err != nil {
		return "", err
	}
	r, err := store.OpenRedis(opts)
	if err != nil {
		return "", err
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), migrateTimeout)
	defer cancel()
	n, err := store.CopyToRedis(ctx, b, r)
	if err != nil {
		return "", fmt.Errorf("copy %s to redis %s: %w (after %d keys)", src, opts.Addr, err, n.Copied)
	}
	keys, err := migrateKeys(ctx, cfg, r, kr, logger)
	if err != nil {
		return "", fmt.Errorf("copy the sealed keys of %s to redis %s: %w", cfg.DataDir, opts.Addr, err)
	}
	return fmt.Sprintf("Copied %d keys (%d with an expiry) from %s to redis %s db %d prefix %q; skipped %d expired keys. Copied %d sealed secret keys (SSH, recording).\n",
		n.Copied, n.WithTTL, src, opts.Addr, opts.DB, opts.Prefix, n.Expired, keys), nil
}

// migrateKeys copies the secret keys of cfg's data_dir into st, sealed,
// and returns how many. Plaintext key files of older releases are sealed
// in data_dir first, so the host can still go back to the embedded store.
// Keys the host never made are not created.
func migrateKeys(ctx context.Context, cfg *config.Config, st store.Store, kr *secrets.Keyring, logger *slog.Logger) (int, error) {
	files, err := secrets.NewVault(secrets.VaultConfig{Keyring: kr, Backend: secrets.Dir(cfg.DataDir), PlainDir: cfg.DataDir, Logger: logger})
	if err != nil {
		return 0, err
	}
	shared, err := secrets.NewVault(secrets.VaultConfig{Keyring: kr, Backend: storeKeys{st: st}, Import: secrets.Dir(cfg.DataDir), Logger: logger})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range allKeySpecs() {
		s.New = nil
		if _, err := files.LoadOrCreate(ctx, s); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return n, err
		}
		if _, err := shared.LoadOrCreate(ctx, s); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// readSecretFile reads a secret from file as config checks *_file keys:
// surrounding white space dropped, empty refused. what names the flag or
// key in errors; the secret never appears in them.
func readSecretFile(what, file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s %s: empty", what, file)
	}
	return s, nil
}
