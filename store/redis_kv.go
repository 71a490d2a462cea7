package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// casScript is CompareAndSwap. ARGV: 1 "0" when old is nil (the key must be
// absent) or "1" (the key must hold old), 2 old, 3 new, 4 ttl in ms (0: none).
// GET of an absent key is false in Lua, so an empty old matches only a
// present, empty value.
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
if ARGV[4] == '0' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
end
return 1
`)

// incrScript is Incr. ARGV[1] is the ttl in ms (0: none), applied only when
// INCR creates the counter, so a fixed window keeps its end. INCR itself
// refuses a value that is not a decimal integer, and overflow.
var incrScript = redis.NewScript(`
local existed = redis.call('EXISTS', KEYS[1])
local n = redis.call('INCR', KEYS[1])
if existed == 0 and ARGV[1] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
`)

// Get returns the value of key or ErrNotFound.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	if err := r.check(ctx, key, 0); err != nil {
		return nil, err
	}
	return value("get", r.c.Get(ctx, r.key(key)))
}

// GetMany returns the values of keys with one pipeline of GETs per
// listBatch keys, nil for each absent key. GETs, not MGET: MGET answers nil
// for a key holding another type, where GET fails, and a lock check must
// fail on such a key rather than read it as absent.
func (r *Redis) GetMany(ctx context.Context, keys ...string) ([][]byte, error) {
	if err := r.checkMany(ctx, 0, keys...); err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	for start := 0; start < len(keys); start += listBatch {
		batch := keys[start:min(start+listBatch, len(keys))]
		pipe := r.c.Pipeline()
		cmds := make([]*redis.StringCmd, len(batch))
		for i, k := range batch {
			cmds[i] = pipe.Get(ctx, r.key(k))
		}
		// Exec's error is the first command's; each command's own is read
		// below, where redis.Nil means absent.
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, mapRedisErr("get", err)
		}
		for i, cmd := range cmds {
			v, err := value("get", cmd)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return nil, err
			case v == nil:
				out[start+i] = []byte{} // present and empty: not absent
			default:
				out[start+i] = v
			}
		}
	}
	return out, nil
}

// SetMany stores every pair of kvs with one pipeline per listBatch pairs.
func (r *Redis) SetMany(ctx context.Context, kvs []KV, ttl time.Duration) error {
	if err := r.checkMany(ctx, ttl, kvKeys(kvs)...); err != nil || len(kvs) == 0 {
		return err
	}
	for batch := range slices.Chunk(kvs, listBatch) {
		pipe := r.c.Pipeline()
		for _, kv := range batch {
			pipe.Set(ctx, r.key(kv.Key), kv.Value, redisTTL(ttl))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return mapRedisErr("set", err)
		}
	}
	return nil
}

// value is the result of a command that returns one value, with Redis's
// nil reply as ErrNotFound.
func value(op string, cmd *redis.StringCmd) ([]byte, error) {
	v, err := cmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, mapRedisErr(op, err)
	}
	return v, nil
}

// Set stores value under key, replacing the value and any expiry.
func (r *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := r.check(ctx, key, ttl); err != nil {
		return err
	}
	if err := r.c.Set(ctx, r.key(key), value, redisTTL(ttl)).Err(); err != nil {
		return mapRedisErr("set", err)
	}
	return nil
}

// SetNX stores value only if key is absent and reports whether it did.
func (r *Redis) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := r.check(ctx, key, ttl); err != nil {
		return false, err
	}
	ok, err := r.c.SetNX(ctx, r.key(key), value, redisTTL(ttl)).Result()
	if err != nil {
		return false, mapRedisErr("setnx", err)
	}
	return ok, nil
}

// CompareAndSwap replaces key's value with new only if it equals old (nil
// old: only if key is absent), atomically in one script.
func (r *Redis) CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error) {
	if err := r.check(ctx, key, ttl); err != nil {
		return false, err
	}
	mode := "1"
	if old == nil {
		mode = "0"
	}
	n, err := casScript.Run(ctx, r.c, []string{r.key(key)}, mode, old, new, redisTTL(ttl).Milliseconds()).Int()
	if err != nil {
		return false, mapRedisErr("compare-and-swap", err)
	}
	return n == 1, nil
}

// GetDel atomically returns and deletes key (GETDEL), so of several
// replicas redeeming the same single-use code exactly one gets it.
func (r *Redis) GetDel(ctx context.Context, key string) ([]byte, error) {
	if err := r.check(ctx, key, 0); err != nil {
		return nil, err
	}
	return value("getdel", r.c.GetDel(ctx, r.key(key)))
}

// Delete removes key; deleting an absent key is not an error.
func (r *Redis) Delete(ctx context.Context, key string) error {
	if err := r.check(ctx, key, 0); err != nil {
		return err
	}
	if err := r.c.Del(ctx, r.key(key)).Err(); err != nil {
		return mapRedisErr("del", err)
	}
	return nil
}

// Incr adds one to the counter at key and returns the new value. A new
// counter gets ttl; an existing one keeps its expiry.
func (r *Redis) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if err := r.check(ctx, key, ttl); err != nil {
		return 0, err
	}
	n, err := incrScript.Run(ctx, r.c, []string{r.key(key)}, redisTTL(ttl).Milliseconds()).Int64()
	if err != nil {
		return 0, mapRedisErr("incr", err)
	}
	return n, nil
}

// listBatch is how many keys one SCAN step asks for and one MGET fetches.
const listBatch = 500

// List returns every live key with the given prefix, in key order. It
// walks the keys with SCAN (which never blocks the server the way KEYS
// does) and reads their values with MGET. A key deleted or expired between
// the two is left out; a key written meanwhile may or may not appear, as
// with any listing that another replica changes while it runs.
func (r *Redis) List(ctx context.Context, prefix string) ([]KV, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.isClosed() {
		return nil, ErrClosed
	}
	keys, err := r.scan(ctx, r.key(prefix))
	if err != nil {
		return nil, err
	}
	var out []KV
	for batch := range slices.Chunk(keys, listBatch) {
		vals, err := r.c.MGet(ctx, batch...).Result()
		if err != nil {
			return nil, mapRedisErr("mget", err)
		}
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue // gone since the scan (nil), or not a string
			}
			out = append(out, KV{Key: strings.TrimPrefix(batch[i], r.prefix), Value: []byte(s)})
		}
	}
	return out, nil
}

// scan returns the distinct keys that start with full (namespace included),
// sorted. SCAN may return a key more than once.
func (r *Redis) scan(ctx context.Context, full string) ([]string, error) {
	match := globEscape(full) + "*"
	seen := make(map[string]struct{})
	var cursor uint64
	for {
		keys, next, err := r.c.Scan(ctx, cursor, match, listBatch).Result()
		if err != nil {
			return nil, mapRedisErr("scan", err)
		}
		for _, k := range keys {
			seen[k] = struct{}{}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// globEscape quotes the characters that Redis's MATCH pattern treats
// specially, so a prefix such as "user/a*b" matches only itself.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}
