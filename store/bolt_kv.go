package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

var be = binary.BigEndian

// errCorrupt reports a stored value too short to carry its expiry prefix.
var errCorrupt = errors.New("store: corrupt value (missing expiry prefix)")

// txn is one bbolt transaction seen through the store's encoding: values are
// prefixed with their expiry, and expired values read as absent.
type txn struct {
	kv, exp *bolt.Bucket
	now     int64 // unix nanos
}

func newTxn(tx *bolt.Tx, now time.Time) *txn {
	return &txn{kv: tx.Bucket(kvBucket), exp: tx.Bucket(expBucket), now: now.UnixNano()}
}

// get returns the live value of key, valid only inside the transaction.
func (t *txn) get(key []byte) ([]byte, bool, error) {
	raw := t.kv.Get(key)
	if raw == nil {
		return nil, false, nil
	}
	if len(raw) < 8 {
		return nil, false, fmt.Errorf("%w: key %q", errCorrupt, key)
	}
	if exp := int64(be.Uint64(raw[:8])); exp != 0 && exp <= t.now {
		return nil, false, nil
	}
	return raw[8:], true, nil
}

// expiryOf returns the stored expiry of key (0 if none or absent).
func (t *txn) expiryOf(key []byte) int64 {
	raw := t.kv.Get(key)
	if len(raw) < 8 {
		return 0
	}
	return int64(be.Uint64(raw[:8]))
}

// put stores value under key with an absolute expiry (0 = never) and keeps
// the expiry index in step.
func (t *txn) put(key, value []byte, exp int64) error {
	if err := t.unindex(key); err != nil {
		return err
	}
	raw := make([]byte, 8+len(value))
	be.PutUint64(raw, uint64(exp))
	copy(raw[8:], value)
	if err := t.kv.Put(key, raw); err != nil {
		return err
	}
	if exp == 0 {
		return nil
	}
	return t.exp.Put(indexKey(exp, key), nil)
}

// del removes key and its index entry.
func (t *txn) del(key []byte) error {
	if err := t.unindex(key); err != nil {
		return err
	}
	return t.kv.Delete(key)
}

func (t *txn) unindex(key []byte) error {
	if old := t.expiryOf(key); old != 0 {
		return t.exp.Delete(indexKey(old, key))
	}
	return nil
}

func indexKey(exp int64, key []byte) []byte {
	k := make([]byte, 8+len(key))
	be.PutUint64(k, uint64(exp))
	copy(k[8:], key)
	return k
}

// expiry turns a ttl into an absolute expiry in unix nanos (0 = never).
func (t *txn) expiry(ttl time.Duration) int64 {
	if ttl == 0 {
		return 0
	}
	return t.now + int64(ttl)
}

// checkArgs validates what every method receives.
func checkArgs(ctx context.Context, key string, ttl time.Duration) error {
	return checkMany(ctx, ttl, key)
}

// checkMany is checkArgs for calls on several keys (none is allowed).
func checkMany(ctx context.Context, ttl time.Duration, keys ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, key := range keys {
		if key == "" {
			return errors.New("store: empty key")
		}
		if len(key) > maxKeyLen {
			return fmt.Errorf("store: key longer than %d bytes", maxKeyLen)
		}
	}
	if ttl < 0 {
		return fmt.Errorf("store: negative ttl %v", ttl)
	}
	return nil
}

// kvKeys returns the keys of kvs.
func kvKeys(kvs []KV) []string {
	keys := make([]string, len(kvs))
	for i, kv := range kvs {
		keys[i] = kv.Key
	}
	return keys
}

// view runs fn in a read transaction.
func (b *Bolt) view(fn func(t *txn) error) error {
	return mapErr(b.db.View(func(tx *bolt.Tx) error { return fn(newTxn(tx, b.now())) }))
}

// update runs fn in a write transaction, committed with fsync.
func (b *Bolt) update(fn func(t *txn) error) error {
	return mapErr(b.db.Update(func(tx *bolt.Tx) error { return fn(newTxn(tx, b.now())) }))
}

// Get returns the value of key or ErrNotFound.
func (b *Bolt) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkArgs(ctx, key, 0); err != nil {
		return nil, err
	}
	var out []byte
	err := b.view(func(t *txn) error {
		v, ok, err := t.get([]byte(key))
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		out = bytes.Clone(v)
		if out == nil {
			out = []byte{}
		}
		return nil
	})
	return out, err
}

// GetMany returns the values of keys from one read transaction, nil for
// each absent key.
func (b *Bolt) GetMany(ctx context.Context, keys ...string) ([][]byte, error) {
	if err := checkMany(ctx, 0, keys...); err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	err := b.view(func(t *txn) error {
		for i, k := range keys {
			v, ok, err := t.get([]byte(k))
			if err != nil {
				return err
			}
			if ok {
				out[i] = append([]byte{}, v...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Set stores value under key, replacing any previous value.
func (b *Bolt) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkArgs(ctx, key, ttl); err != nil {
		return err
	}
	return b.update(func(t *txn) error { return t.put([]byte(key), value, t.expiry(ttl)) })
}

// setManyPerTxn bounds the pairs one SetMany transaction writes. bbolt
// has one writer at a time: a transaction of tens of thousands of keys (a
// recording's search tokens after a burst of varied output) held every
// other write, a login's rate counter or a lock among them, for over a
// second. At this size one takes a few milliseconds, and the fsyncs are
// still a thousandth of one per key.
const setManyPerTxn = 1024

// SetMany stores every pair of kvs, setManyPerTxn pairs per write
// transaction.
func (b *Bolt) SetMany(ctx context.Context, kvs []KV, ttl time.Duration) error {
	if err := checkMany(ctx, ttl, kvKeys(kvs)...); err != nil {
		return err
	}
	for batch := range slices.Chunk(kvs, setManyPerTxn) {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := b.update(func(t *txn) error {
			exp := t.expiry(ttl)
			for _, kv := range batch {
				if err := t.put([]byte(kv.Key), kv.Value, exp); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// SetNX stores value only if key is absent and reports whether it did.
func (b *Bolt) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := checkArgs(ctx, key, ttl); err != nil {
		return false, err
	}
	done := false
	err := b.update(func(t *txn) error {
		_, ok, err := t.get([]byte(key))
		if err != nil || ok {
			return err
		}
		done = true
		return t.put([]byte(key), value, t.expiry(ttl))
	})
	return done && err == nil, err
}

// CompareAndSwap replaces the value of key with new only if its current
// value equals old (nil old: key absent) and reports whether it did.
func (b *Bolt) CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error) {
	if err := checkArgs(ctx, key, ttl); err != nil {
		return false, err
	}
	done := false
	err := b.update(func(t *txn) error {
		cur, ok, err := t.get([]byte(key))
		if err != nil {
			return err
		}
		if old == nil && ok || old != nil && (!ok || !bytes.Equal(cur, old)) {
			return nil
		}
		done = true
		return t.put([]byte(key), new, t.expiry(ttl))
	})
	return done && err == nil, err
}

// GetDel atomically returns and deletes key, or returns ErrNotFound.
func (b *Bolt) GetDel(ctx context.Context, key string) ([]byte, error) {
	if err := checkArgs(ctx, key, 0); err != nil {
		return nil, err
	}
	var out []byte
	err := b.update(func(t *txn) error {
		v, ok, err := t.get([]byte(key))
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		out = append([]byte{}, v...)
		return t.del([]byte(key))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Delete removes key; deleting an absent key is not an error.
func (b *Bolt) Delete(ctx context.Context, key string) error {
	if err := checkArgs(ctx, key, 0); err != nil {
		return err
	}
	return b.update(func(t *txn) error { return t.del([]byte(key)) })
}

// Incr adds one to the decimal counter at key and returns the new value.
// A new counter gets ttl; an existing one keeps its expiry.
func (b *Bolt) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if err := checkArgs(ctx, key, ttl); err != nil {
		return 0, err
	}
	var n int64
	err := b.update(func(t *txn) error {
		cur, ok, err := t.get([]byte(key))
		if err != nil {
			return err
		}
		exp := t.expiry(ttl)
		if ok {
			v, err := strconv.ParseInt(string(cur), 10, 64)
			if err != nil {
				return fmt.Errorf("store: incr %q: value is not an integer", key)
			}
			if v == 1<<63-1 {
				return fmt.Errorf("store: incr %q: overflow", key)
			}
			n, exp = v, t.expiryOf([]byte(key))
		}
		n++
		return t.put([]byte(key), strconv.AppendInt(nil, n, 10), exp)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// List returns every live key with the given prefix, in key order.
func (b *Bolt) List(ctx context.Context, prefix string) ([]KV, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []KV
	err := b.view(func(t *txn) error {
		p := []byte(prefix)
		c := t.kv.Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			v, ok, err := t.get(k)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, KV{Key: string(k), Value: append([]byte{}, v...)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
