package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MigrateCounts says what CopyToRedis did.
type MigrateCounts struct {
	Copied  int // keys written to Redis
	WithTTL int // of those, keys that carry an expiry
	Expired int // keys skipped because they had expired
}

// ErrTargetNotEmpty is returned by CopyToRedis when Redis already holds
// keys under the store's prefix: merging two stores could revive revoked
// sessions or approvals, so the migration only fills an empty namespace.
var ErrTargetNotEmpty = errors.New("redis already holds keys under the prefix")

// copyBatch is how many keys one pipeline to Redis carries.
const copyBatch = 500

// CopyToRedis copies every live key of b into r, each with its remaining
// lifetime, from one consistent snapshot of b. It refuses (ErrTargetNotEmpty)
// if r's namespace already holds keys. Values are copied as they are:
// secrets sealed under the master key stay sealed.
func CopyToRedis(ctx context.Context, b *Bolt, r *Redis) (MigrateCounts, error) {
	var n MigrateCounts
	if r.isClosed() {
		return n, ErrClosed
	}
	existing, err := r.scan(ctx, r.key(""))
	if err != nil {
		return n, err
	}
	if len(existing) > 0 {
		return n, fmt.Errorf("%w %q (%d keys)", ErrTargetNotEmpty, r.prefix, len(existing))
	}
	type entry struct {
		key, value []byte
		exp        int64 // unix nanos; 0: never
	}
	var batch []entry
	// flush writes batch with one round trip. The remaining lifetime is
	// worked out at write time, so a slow migration does not extend it.
	flush := func() error {
		pipe := r.c.Pipeline()
		now := b.now().UnixNano()
		queued := 0
		for _, e := range batch {
			var ttl time.Duration
			if e.exp != 0 {
				if ttl = time.Duration(e.exp - now); ttl <= 0 {
					n.Expired++
					continue
				}
				n.WithTTL++
			}
			pipe.Set(ctx, r.key(string(e.key)), e.value, redisTTL(ttl))
			queued++
		}
		batch = batch[:0]
		if queued == 0 {
			return nil
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return mapRedisErr("migrate", err)
		}
		n.Copied += queued
		return nil
	}
	err = b.view(func(t *txn) error {
		return t.kv.ForEach(func(k, raw []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if len(raw) < 8 {
				return fmt.Errorf("%w: key %q", errCorrupt, k)
			}
			exp := int64(be.Uint64(raw[:8]))
			if exp != 0 && exp <= t.now {
				n.Expired++
				return nil
			}
			// bbolt's slices live only as long as the transaction.
			batch = append(batch, entry{key: append([]byte(nil), k...), value: append([]byte(nil), raw[8:]...), exp: exp})
			if len(batch) == copyBatch {
				return flush()
			}
			return nil
		})
	})
	if err == nil {
		err = flush()
	}
	return n, err
}

// TTL returns the remaining lifetime of key: zero for a key without expiry,
// ErrNotFound for an absent one. It lets tests and the migration check
// expiries, which the Store interface does not expose.
func (r *Redis) TTL(ctx context.Context, key string) (time.Duration, error) {
	if err := r.check(ctx, key, 0); err != nil {
		return 0, err
	}
	d, err := r.c.PTTL(ctx, r.key(key)).Result()
	if err != nil {
		return 0, mapRedisErr("pttl", err)
	}
	// go-redis passes Redis's -2 (absent) and -1 (no expiry) through
	// as nanoseconds.
	switch d {
	case -2:
		return 0, ErrNotFound
	case -1:
		return 0, nil
	}
	return d, nil
}
