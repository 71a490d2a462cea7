package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

var _ Store = (*Redis)(nil)

// defaultRedisTimeout bounds each dial, read and write to Redis, so a Redis
// that stops answering surfaces as an error (callers fail closed) instead of
// a hung login.
const defaultRedisTimeout = 2 * time.Second

// RedisOptions configures OpenRedis.
type RedisOptions struct {
	// Addr is "host:port" of the Redis server. With MasterName set it is
	// unused: the Sentinels say where the master is.
	Addr string
	// MasterName and SentinelAddrs, when MasterName is set, find the master
	// through Redis Sentinel and follow it across failovers.
	MasterName    string
	SentinelAddrs []string
	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// (empty: none).
	SentinelUsername, SentinelPassword string
	// Username is the ACL user, or "" for the default user.
	Username string
	// Password authenticates the connection; "" sends no AUTH. The caller
	// reads it from a file: it never appears in the config itself.
	Password string
	// DB is the logical database number (0 to 15 on a default Redis).
	DB int
	// TLS, if not nil, makes every connection use TLS with this config.
	TLS *tls.Config
	// Prefix is prepended to every key and pub/sub channel (for example
	// "gatehouse:"), so Gatehouse can share a Redis with other programs.
	// List and the migration never see keys outside it.
	Prefix string
	// Timeout bounds each dial, read and write. Zero means two seconds.
	Timeout time.Duration
	// Logger, if set, receives go-redis's own messages (failed dials while
	// Redis is down) as warnings instead of plain lines on stderr, which
	// would break a JSON log. go-redis keeps one logger per process, so
	// the last OpenRedis with a Logger sets it.
	Logger *slog.Logger
}

// Redis is the shared Store: every replica talks to the same Redis server,
// so sessions, approvals, locks, counters and pub/sub messages are seen by
// all of them. Operations that Redis has no single command for run as Lua
// scripts, which Redis executes atomically.
type Redis struct {
	c      *redis.Client
	prefix string
	desc   string // the server or Sentinel master, for logs

	mu     sync.Mutex             // guards subs and closed
	subs   map[*redisSub]struct{} // live subscriptions, ended by Close
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// OpenRedis connects to Redis and checks with a PING that the server
// answers and accepts the credentials, so a wrong address or password is
// reported when Gatehouse starts rather than at the first login. Later
// outages are not fatal: go-redis reconnects, and each operation meanwhile
// returns an error.
func OpenRedis(opts RedisOptions) (*Redis, error) {
	if opts.Addr == "" && opts.MasterName == "" {
		return nil, errors.New("open redis: empty address")
	}
	if opts.MasterName != "" && len(opts.SentinelAddrs) == 0 {
		return nil, errors.New("open redis: sentinel master name without sentinel addresses")
	}
	if opts.DB < 0 {
		return nil, fmt.Errorf("open redis: negative database number %d", opts.DB)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultRedisTimeout
	}
	if opts.Logger != nil {
		redis.SetLogger(slogPrinter{opts.Logger})
	}
	c := newRedisClient(opts, timeout)
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("open redis %s: %w", describe(opts), err)
	}
	return &Redis{c: c, prefix: opts.Prefix, desc: describe(opts), subs: make(map[*redisSub]struct{})}, nil
}

// slogPrinter is go-redis's logging interface over slog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(ctx context.Context, format string, v ...any) {
	p.l.WarnContext(ctx, "Redis client: "+fmt.Sprintf(format, v...))
}

// describe names the server (or Sentinel master) of opts for errors.
func describe(opts RedisOptions) string {
	if opts.MasterName != "" {
		return fmt.Sprintf("master %q via sentinels %v", opts.MasterName, opts.SentinelAddrs)
	}
	return opts.Addr
}

// newRedisClient builds the go-redis client: a plain one, or a failover
// client that asks the Sentinels for the master. Both are *redis.Client, so
// everything else is the same.
func newRedisClient(opts RedisOptions, timeout time.Duration) *redis.Client {
	if opts.MasterName != "" {
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:            opts.MasterName,
			SentinelAddrs:         opts.SentinelAddrs,
			SentinelUsername:      opts.SentinelUsername,
			SentinelPassword:      opts.SentinelPassword,
			Username:              opts.Username,
			Password:              opts.Password,
			DB:                    opts.DB,
			TLSConfig:             opts.TLS,
			ContextTimeoutEnabled: true,
			DialTimeout:           timeout,
			ReadTimeout:           timeout,
			WriteTimeout:          timeout,
			PoolTimeout:           timeout,
			MaxRetries:            1, // as below
			DisableIdentity:       true,
		})
	}
	return redis.NewClient(&redis.Options{
		Addr:      opts.Addr,
		Username:  opts.Username,
		Password:  opts.Password,
		DB:        opts.DB,
		TLSConfig: opts.TLS,
		// Deadlines of the caller's ctx apply to the network calls too.
		ContextTimeoutEnabled: true,
		DialTimeout:           timeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		// One retry covers a pooled connection that Redis closed (a
		// restart). A retried write whose first reply was lost can only
		// err towards refusal: a rate counter counted twice, a single-use
		// code reported absent, a lock reported taken.
		MaxRetries: 1,
		// CLIENT SETINFO and maintenance notifications are extras that
		// older servers reject; leaving them out keeps the handshake to
		// AUTH and SELECT.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

// Close ends every subscription and closes the connections. Calling it
// again returns the first call's result.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		subs := r.subs
		r.subs = nil
		r.mu.Unlock()
		for s := range subs {
			s.end()
		}
		r.closeErr = r.c.Close()
	})
	return r.closeErr
}

// isClosed reports whether Close has been called.
func (r *Redis) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// check validates the arguments like Bolt does and refuses a closed store.
func (r *Redis) check(ctx context.Context, key string, ttl time.Duration) error {
	return r.checkMany(ctx, ttl, key)
}

// checkMany is check for calls on several keys.
func (r *Redis) checkMany(ctx context.Context, ttl time.Duration, keys ...string) error {
	if err := checkMany(ctx, ttl, keys...); err != nil {
		return err
	}
	if r.isClosed() {
		return ErrClosed
	}
	return nil
}

// key namespaces a store key.
func (r *Redis) key(k string) string { return r.prefix + k }

// mapRedisErr turns go-redis's closed-client error into ErrClosed and says
// which operation failed, without the values involved.
func mapRedisErr(op string, err error) error {
	if errors.Is(err, redis.ErrClosed) {
		return ErrClosed
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("store: redis %s: %w", op, err)
}

// redisTTL rounds ttl up to whole milliseconds, Redis's unit: rounding
// down could reach zero, which Redis reads as "no expiry" or rejects.
func redisTTL(ttl time.Duration) time.Duration {
	if r := ttl % time.Millisecond; r != 0 {
		ttl += time.Millisecond - r
	}
	return ttl
}
