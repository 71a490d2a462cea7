// Package store is the only place that knows where Gatehouse's state lives.
// It offers one small key-value contract with two implementations: Bolt,
// embedded in the data directory (one replica), and Redis (several replicas
// sharing state). Consumers declare the subset of methods they use.
//
// Keys are namespaced by their consumer, e.g. "session/<id>",
// "approval/<code>", "lock/<email>". Values are opaque bytes; callers that
// keep secrets in the store encrypt them first.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a key is absent or has expired.
var ErrNotFound = errors.New("store: not found")

// KV is one key and its value.
type KV struct {
	Key   string
	Value []byte
}

// Store is the contract both implementations satisfy. All methods are safe
// for concurrent use and return ctx.Err() when ctx is already done. Keys must
// be non-empty. A ttl of zero means the key never expires and a negative ttl
// is an error; an expired key behaves exactly like an absent one in every
// method. Returned byte slices belong to the caller.
//
// The conformance suite in package store/storetest pins these semantics down;
// every implementation runs it.
type Store interface {
	// Get returns the value of key or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// GetMany returns the values of keys, in their order: nil for an absent
	// key, a non-nil empty slice for a present empty value. The embedded
	// store reads them in one transaction; Redis with one pipeline of GETs
	// per 500 keys, so a login that checks several keys pays one round trip
	// instead of one per key.
	GetMany(ctx context.Context, keys ...string) ([][]byte, error)
	// Set stores value under key, replacing any previous value.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// SetMany stores every pair of kvs as Set would, each with ttl: the
	// embedded store in one transaction (one fsync), Redis with one
	// pipeline per 500 pairs. It is not atomic on Redis: after an error,
	// some pairs may be stored.
	SetMany(ctx context.Context, kvs []KV, ttl time.Duration) error
	// SetNX stores value only if key is absent; it reports whether it did.
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// CompareAndSwap replaces the value of key with new only if its current
	// value equals old, and reports whether it did. A nil old means "absent";
	// a non-nil empty old matches only a present, empty value. The new value
	// gets ttl (zero: no expiry).
	CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error)
	// GetDel atomically returns and deletes key: the basis of single-use
	// codes. It returns ErrNotFound if key is absent.
	GetDel(ctx context.Context, key string) ([]byte, error)
	// Delete removes key; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// Incr adds one to the counter at key and returns the new value. When it
	// creates the counter it sets ttl, so a fixed window rate limit is
	// Incr(key+window) compared with a limit; incrementing an existing counter
	// keeps its expiry. The counter is stored as a decimal string (Get returns
	// "3"), and Incr of a value that is not one is an error.
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
	// List returns every live key with the given prefix, in key order.
	List(ctx context.Context, prefix string) ([]KV, error)
	// Publish sends msg to every subscriber of channel on every replica.
	// Messages are not stored: a subscriber that is not subscribed yet misses
	// them.
	Publish(ctx context.Context, channel string, msg []byte) error
	// Subscribe delivers the messages published on channel, in publish order,
	// until ctx ends or the store is closed; the returned channel is closed
	// then. The subscription is active when Subscribe returns.
	Subscribe(ctx context.Context, channel string) (<-chan []byte, error)
	// Close releases the store.
	Close() error
}
