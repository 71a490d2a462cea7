package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrInUse is returned by OpenBolt when another process holds the store
// file, which means another gatehouse runs on the same data directory.
var ErrInUse = errors.New("data directory is in use by another gatehouse")

// ErrClosed is returned by every method of a closed Bolt.
var ErrClosed = errors.New("store: closed")

var _ Store = (*Bolt)(nil)

// Bucket names. kvBucket maps key -> expiry (8 bytes, big-endian unix nanos,
// 0 = never) followed by the value; expBucket is the expiry index, mapping
// expiry (8 bytes) followed by key -> nothing, so the sweeper finds expired
// keys without scanning everything.
var (
	kvBucket  = []byte("kv")
	expBucket = []byte("exp")
)

const (
	defaultLockTimeout   = time.Second
	defaultSweepInterval = time.Minute
	// sweepBatch bounds the keys deleted in one write transaction, so the
	// sweeper never holds the writer lock for long.
	sweepBatch = 1000
	// maxKeyLen leaves room for the 8-byte expiry prefix in the index.
	maxKeyLen = bolt.MaxKeySize - 8
)

// BoltOptions tunes OpenBoltWith. The zero value is what OpenBolt uses.
type BoltOptions struct {
	// LockTimeout is how long to wait for another process to release the
	// store file before failing with ErrInUse. Zero means one second.
	LockTimeout time.Duration
	// SweepInterval is how often expired keys are deleted from disk. Zero
	// means one minute. Expired keys are invisible before they are swept.
	SweepInterval time.Duration
	// Now is the clock that judges expiry. If nil, time.Now is used.
	Now func() time.Time
	// Logger receives the sweeper's errors. If nil, they are discarded.
	Logger *slog.Logger
}

// Bolt is the embedded Store: one bbolt file in the data directory, for a
// single replica. Every write is one bbolt transaction, committed with fsync
// before the method returns, so a crash (even kill -9 or power loss) loses
// no write that returned nil. Publish and Subscribe fan out in process.
type Bolt struct {
	db     *bolt.DB
	now    func() time.Time
	logger *slog.Logger

	stop      chan struct{} // closed by Close to stop the sweeper
	swept     chan struct{} // closed when the sweeper goroutine has exited
	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex                            // guards subs and closed
	subs   map[string]map[*subscription]struct{} // channel -> subscribers
	closed bool
}

// OpenBolt opens (creating if needed) the store file at path with the
// default options. The file is created 0600 and its directory 0700. If
// another process holds the file, it fails within a second with an error
// wrapping ErrInUse.
func OpenBolt(path string) (*Bolt, error) {
	return OpenBoltWith(path, BoltOptions{})
}

// OpenBoltWith is OpenBolt with options.
func OpenBoltWith(path string, opts BoltOptions) (*Bolt, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = defaultLockTimeout
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = defaultSweepInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (its lock is held)", path, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := tightenMode(path); err != nil {
		db.Close()
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{kvBucket, expBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: create buckets: %w", path, err)
	}
	b := &Bolt{
		db:     db,
		now:    opts.Now,
		logger: opts.Logger,
		stop:   make(chan struct{}),
		swept:  make(chan struct{}),
		subs:   make(map[string]map[*subscription]struct{}),
	}
	go b.sweepLoop(opts.SweepInterval)
	return b, nil
}

// tightenMode makes an existing store file owner-only: it may hold sessions
// and key bindings.
func tightenMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("open store %s: restrict mode to 0600: %w", path, err)
		}
	}
	return nil
}

// Close stops the sweeper, ends every subscription and closes the file.
// Calling it again returns the first call's result.
func (b *Bolt) Close() error {
	b.closeOnce.Do(func() {
		close(b.stop)
		<-b.swept
		b.mu.Lock()
		b.closed = true
		subs := b.subs
		b.subs = nil
		b.mu.Unlock()
		for _, set := range subs {
			for s := range set {
				s.end()
			}
		}
		b.closeErr = b.db.Close()
	})
	return b.closeErr
}

// sweepLoop deletes expired keys every interval until Close.
func (b *Bolt) sweepLoop(interval time.Duration) {
	defer close(b.swept)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			if _, err := b.sweep(); err != nil {
				b.logger.Error("Failed to sweep expired store keys.", "error", err)
			}
		}
	}
}

// sweep deletes every key that has expired by now, in batches of at most
// sweepBatch keys per transaction, and returns how many it deleted.
func (b *Bolt) sweep() (int, error) {
	total := 0
	for {
		select {
		case <-b.stop:
			return total, nil
		default:
		}
		n, more := 0, false
		err := b.update(func(t *txn) error {
			var expired [][]byte
			c := t.exp.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if len(k) < 8 || int64(be.Uint64(k[:8])) > t.now {
					break
				}
				if len(expired) == sweepBatch {
					more = true
					break
				}
				expired = append(expired, append([]byte(nil), k...))
			}
			for _, k := range expired {
				if err := t.exp.Delete(k); err != nil {
					return err
				}
				key := k[8:]
				if t.expiryOf(key) != int64(be.Uint64(k[:8])) {
					continue // rewritten since; its own index entry stays
				}
				if err := t.kv.Delete(key); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("sweep: %w", err)
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

// mapErr turns bbolt's "database not open" into ErrClosed.
func mapErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}
