package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
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
	out, err := migrateStore(cfg, opts)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse migrate-store:", err)
		return 1
	}
	fmt.Fprint(stdout, out)
	return 0
}

// migrateStore copies cfg's embedded store into the Redis of opts and
// describes what it copied.
func migrateStore(cfg *config.Config, opts store.RedisOptions) (string, error) {
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
	return fmt.Sprintf("Copied %d keys (%d with an expiry) from %s to redis %s db %d prefix %q; skipped %d expired keys.\n",
		n.Copied, n.WithTTL, src, opts.Addr, opts.DB, opts.Prefix, n.Expired), nil
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
