package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// CertKV is the part of Gatehouse's store that certificate storage needs,
// so that several replicas share certificates, ACME accounts and the locks
// that keep them from ordering the same certificate twice. The methods
// mean what they mean on store.Store; proxy does not import store, so
// cmd/gatehouse adapts it (Keys is store.Store.List without the values,
// and Get's not-found error must match fs.ErrNotExist).
type CertKV interface {
	// Get returns the value of key, or an error matching fs.ErrNotExist.
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error)
	Delete(ctx context.Context, key string) error
	// Keys returns every key with prefix, in key order.
	Keys(ctx context.Context, prefix string) ([]string, error)
}

// CertDataPrefix is the store namespace of certmagic's files (certificates,
// their private keys, ACME accounts): a CertKV that seals values at rest
// seals the keys under it. Locks live apart (certLockPrefix) so that
// listing certificates never shows them.
const CertDataPrefix = "certmagic/"

const (
	certDataPrefix = CertDataPrefix
	certLockPrefix = "certmagic-lock/"
)

// Lock timing defaults. A replica that dies holding a lock blocks the
// others for at most defaultCertLockTTL; a live holder refreshes well
// before that.
const (
	defaultCertLockTTL  = 30 * time.Second
	defaultCertLockPoll = time.Second
)

// CertStorageOptions tunes NewCertStorage. The zero value is the default.
type CertStorageOptions struct {
	// LockTTL is how long a lock outlives a holder that stopped refreshing
	// it (a crash). Zero means 30 seconds.
	LockTTL time.Duration
	// PollInterval is how often Lock retries a lock held elsewhere. Zero
	// means one second.
	PollInterval time.Duration
	// Now stamps written values for Stat. If nil, time.Now.
	Now func() time.Time
	// Logger receives lock refresh failures. If nil, they are discarded.
	Logger *slog.Logger
}

// CertStorage is a certmagic.Storage over a CertKV: files become keys under
// "certmagic/", directories are key prefixes, and locks are SetNX keys
// with a TTL that the holder refreshes while it works.
type CertStorage struct {
	kv     CertKV
	ttl    time.Duration
	poll   time.Duration
	now    func() time.Time
	logger *slog.Logger

	mu   sync.Mutex           // guards held
	held map[string]*certLock // lock name -> the lock this process holds
}

var (
	_ certmagic.Storage          = (*CertStorage)(nil)
	_ certmagic.TryLocker        = (*CertStorage)(nil)
	_ certmagic.LockLeaseRenewer = (*CertStorage)(nil)
)

// NewCertStorage returns certificate storage over kv.
func NewCertStorage(kv CertKV, opts CertStorageOptions) *CertStorage {
	if opts.LockTTL <= 0 {
		opts.LockTTL = defaultCertLockTTL
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultCertLockPoll
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &CertStorage{
		kv: kv, ttl: opts.LockTTL, poll: opts.PollInterval, now: opts.Now,
		logger: opts.Logger, held: make(map[string]*certLock),
	}
}

// stampLen is the size of the modification time stored before each value,
// which Stat reports (certmagic picks the newest ACME account by it).
const stampLen = 8

// dataKey maps a certmagic key to its store key. certmagic's keys are
// slash-separated paths; cleaning them makes "a/b" and "a//b/" one key.
func dataKey(key string) string {
	return certDataPrefix + strings.Trim(path.Clean("/"+key), "/")
}

// dirPrefix is the store prefix of everything under the directory key.
func dirPrefix(key string) string {
	k := dataKey(key)
	if k == certDataPrefix {
		return k
	}
	return k + "/"
}

// Store writes value at key.
func (s *CertStorage) Store(ctx context.Context, key string, value []byte) error {
	buf := make([]byte, stampLen, stampLen+len(value))
	binary.BigEndian.PutUint64(buf, uint64(s.now().UnixNano()))
	if err := s.kv.Set(ctx, dataKey(key), append(buf, value...), 0); err != nil {
		return fmt.Errorf("certificate storage: store %s: %w", key, err)
	}
	return nil
}

// load returns the value at key and when it was written.
func (s *CertStorage) load(ctx context.Context, key string) ([]byte, time.Time, error) {
	v, err := s.kv.Get(ctx, dataKey(key))
	if err != nil {
		return nil, time.Time{}, err
	}
	if len(v) < stampLen {
		return nil, time.Time{}, fmt.Errorf("certificate storage: %s: value too short to be ours", key)
	}
	return v[stampLen:], time.Unix(0, int64(binary.BigEndian.Uint64(v))), nil
}

// Load returns the value at key, or an error matching fs.ErrNotExist.
func (s *CertStorage) Load(ctx context.Context, key string) ([]byte, error) {
	v, _, err := s.load(ctx, key)
	return v, err
}

// Delete removes key and, if it is a directory, everything under it.
func (s *CertStorage) Delete(ctx context.Context, key string) error {
	keys, err := s.kv.Keys(ctx, dirPrefix(key))
	if err != nil {
		return fmt.Errorf("certificate storage: delete %s: %w", key, err)
	}
	for _, k := range append(keys, dataKey(key)) {
		if err := s.kv.Delete(ctx, k); err != nil {
			return fmt.Errorf("certificate storage: delete %s: %w", key, err)
		}
	}
	return nil
}

// Exists reports whether key is a file or a directory. An error counts as
// "does not exist", as certmagic's interface has no error to return.
func (s *CertStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List returns the files and directories directly under dir, or with
// recursive every one below it, as paths joined to dir.
func (s *CertStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	prefix := dirPrefix(dir)
	keys, err := s.kv.Keys(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("certificate storage: list %s: %w", dir, err)
	}
	seen := make(map[string]bool)
	var out []string
	add := func(rel string) {
		if !seen[rel] {
			seen[rel] = true
			out = append(out, path.Join(dir, rel))
		}
	}
	for _, k := range keys {
		rel := strings.TrimPrefix(k, prefix)
		parts := strings.Split(rel, "/")
		if !recursive {
			add(parts[0])
			continue
		}
		for i := range parts {
			add(strings.Join(parts[:i+1], "/"))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("certificate storage: list %s: %w", dir, fs.ErrNotExist)
	}
	slices.Sort(out)
	return out, nil
}

// Stat describes key: a file, or a directory whose modification time is
// its newest file's.
func (s *CertStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	v, mod, err := s.load(ctx, key)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: mod, Size: int64(len(v)), IsTerminal: true}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return certmagic.KeyInfo{}, err
	}
	keys, err := s.kv.Keys(ctx, dirPrefix(key))
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("certificate storage: stat %s: %w", key, err)
	}
	if len(keys) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("certificate storage: stat %s: %w", key, fs.ErrNotExist)
	}
	info := certmagic.KeyInfo{Key: key}
	for _, k := range keys {
		if _, mod, err := s.load(ctx, strings.TrimPrefix(k, certDataPrefix)); err == nil && mod.After(info.Modified) {
			info.Modified = mod
		}
	}
	return info, nil
}

// String names the storage in certmagic's logs.
func (s *CertStorage) String() string { return "gatehouse store" }
