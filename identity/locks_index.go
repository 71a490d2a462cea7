package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/gatehouse-dev/gatehouse/store"
)

// lockIndexKey holds the store keys of every lock, so that the periodic
// re-check of live connections reads one value instead of listing the
// store: on Redis a List is a SCAN of the whole keyspace (bench/ha counted
// 9-11 SCAN calls per replica every 5 s at 5,000 keys).
//
// The index is written before a lock and again after it, and cleared
// before its removal, so it may name a lock that is not (or no longer)
// there, but never misses one that stands, even when a lock and an unlock
// of the same thing race; All confirms each entry with a read. Locks are
// few, so that read is cheap.
const lockIndexKey = "lockindex"

// casRetries bounds the compare-and-swap loop on the index; each retry
// means another lock or unlock raced this one, which is rare.
const casRetries = 50

// indexUpdate applies change to the lock index with compare-and-swap, so
// that concurrent locks on several replicas lose no entry.
func (l *Locks) indexUpdate(ctx context.Context, change func([]string) []string) error {
	for range casRetries {
		old, err := l.d.Store.Get(ctx, lockIndexKey)
		if errors.Is(err, store.ErrNotFound) {
			old, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("read lock index: %w", err)
		}
		var keys []string
		if old != nil {
			if err := json.Unmarshal(old, &keys); err != nil {
				return fmt.Errorf("lock index: %w", err)
			}
		}
		next, _ := json.Marshal(change(keys))
		ok, err := l.d.Store.CompareAndSwap(ctx, lockIndexKey, old, next, 0)
		if err != nil {
			return fmt.Errorf("write lock index: %w", err)
		}
		if ok {
			return nil
		}
	}
	return errors.New("write lock index: too many concurrent changes; try again")
}

// indexAdd records key in the lock index (before the lock is written).
func (l *Locks) indexAdd(ctx context.Context, key string) error {
	return l.indexUpdate(ctx, func(keys []string) []string {
		if i, found := slices.BinarySearch(keys, key); !found {
			keys = slices.Insert(keys, i, key)
		}
		return keys
	})
}

// indexRemove drops key from the lock index (before the lock is removed).
func (l *Locks) indexRemove(ctx context.Context, key string) error {
	return l.indexUpdate(ctx, func(keys []string) []string {
		if i, found := slices.BinarySearch(keys, key); found {
			keys = slices.Delete(keys, i, i+1)
		}
		return keys
	})
}

// All reads every lock, for a periodic re-check of live connections: the
// index and one read per entry to confirm it. The first call in a process
// also lists the store once, folding into the index any lock written
// without it (by an older release), so none is missed for good.
func (l *Locks) All(ctx context.Context) (LockSet, error) {
	if !l.folded.Load() {
		if err := l.foldUnindexed(ctx); err != nil {
			return LockSet{}, err
		}
		l.folded.Store(true)
	}
	raw, err := l.d.Store.Get(ctx, lockIndexKey)
	if errors.Is(err, store.ErrNotFound) {
		return LockSet{m: map[LockRef]bool{}}, nil
	}
	if err != nil {
		return LockSet{}, fmt.Errorf("read lock index: %w", err)
	}
	var keys []string
	if err := json.Unmarshal(raw, &keys); err != nil {
		return LockSet{}, fmt.Errorf("lock index: %w", err)
	}
	s := LockSet{m: make(map[LockRef]bool, len(keys))}
	if len(keys) == 0 {
		return s, nil
	}
	// The index can name a lock lifted between the two reads: only the
	// locks still stored count.
	vals, err := readMany(ctx, l.d.Store, keys)
	if err != nil {
		return LockSet{}, err
	}
	for i, v := range vals {
		if v != nil {
			s.m[lockFromKey(keys[i])] = true
		}
	}
	return s, nil
}

// foldUnindexed adds to the index every lock the store holds that it does
// not name.
func (l *Locks) foldUnindexed(ctx context.Context) error {
	kvs, err := l.d.Store.List(ctx, "lock/")
	if err != nil {
		return fmt.Errorf("list locks: %w", err)
	}
	for _, kv := range kvs {
		if err := l.indexAdd(ctx, kv.Key); err != nil {
			return err
		}
	}
	return nil
}
