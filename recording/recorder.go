package recording

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/store"
)

// Config configures a Recorder. Dir, Keys and Store are required; the
// other fields have documented defaults.
type Config struct {
	Dir string // data_dir/recordings, created 0700
	// Keys keeps the recording age identity, the index HMAC key and the
	// Ed25519 sealing key, sealed, created on first use (see KeySpecs).
	// Replicas that share recordings must share it (the store vault).
	Keys       *secrets.Vault
	Recipients []string // extra age recipients (config recording.recipients: offline reviewer keys, "age1...")
	Store      store.Store
	// Audit receives seal hashes, purges and retention deletions. If nil,
	// New fails: a recorder that cannot leave an audit trail fails closed.
	Audit interface {
		Log(ctx context.Context, e audit.Event) error
	}
	Logger        *slog.Logger     // nil: discard
	Now           func() time.Time // nil: time.Now
	Replica       string
	FlushInterval time.Duration // 0: 1s
	// Hold reports whether a person's recordings are under legal hold
	// (config recording.legal_hold). Purge refuses them with ErrHold and
	// Sweep keeps them. Nil: nobody is on hold.
	Hold func(user string) bool
}

// Recorder writes, indexes, reads and deletes recordings. It is safe for
// concurrent use.
type Recorder struct {
	cfg   Config
	keys  *keys
	log   *slog.Logger
	now   func() time.Time
	flush time.Duration

	mu   sync.Mutex
	live map[string]*Writer // writers open on this replica, by ID
}

// New loads (or creates on first use) the recording keys from c.Keys and
// creates c.Dir.
func New(c Config) (*Recorder, error) {
	if c.Dir == "" || c.Keys == nil {
		return nil, errors.New("recording: Dir and Keys are required")
	}
	if c.Store == nil {
		return nil, errors.New("recording: Store is required")
	}
	if c.Audit == nil {
		return nil, errors.New("recording: Audit is required")
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	if err := os.Chmod(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	k, err := loadKeys(c.Keys, c.Recipients)
	if err != nil {
		return nil, err
	}
	r := &Recorder{cfg: c, keys: k, log: c.Logger, now: c.Now, flush: c.FlushInterval, live: map[string]*Writer{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.flush <= 0 {
		r.flush = time.Second
	}
	return r, nil
}

// audit writes one audit event and logs (never returns) a failure: the
// caller's operation already happened and must not be reported as failed.
func (r *Recorder) audit(ctx context.Context, e audit.Event) {
	if err := r.cfg.Audit.Log(ctx, e); err != nil {
		r.log.ErrorContext(ctx, "Failed to write a recording audit event.", "type", e.Type, "error", err)
	}
}
