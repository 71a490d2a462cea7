package recording

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// Purge deletes every recording of user (files and index entries) and
// returns their IDs. It refuses with ErrHold when the person is under legal
// hold. Recordings still being written are left alone (they are not
// returned); purge again after the session ended. The audit events keep
// only the fact: recording IDs, not the person.
func (r *Recorder) Purge(ctx context.Context, user string) ([]string, error) {
	if strings.TrimSpace(user) == "" {
		return nil, errors.New("recording: purge needs a user")
	}
	if r.cfg.Hold != nil && r.cfg.Hold(user) {
		return nil, ErrHold
	}
	metas, err := r.List(ctx, Filter{User: user})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, m := range metas {
		if m.Status != StatusLive {
			ids = append(ids, m.ID)
		}
	}
	if err := r.remove(ctx, ids); err != nil {
		return nil, err
	}
	for _, id := range ids {
		r.audit(ctx, audit.Event{Type: "recording.delete", Reason: "purge", Details: map[string]string{"recording": id}})
	}
	return ids, nil
}

// Sweep deletes recordings that ended longer ago than their target's
// retention (0 keeps them), except those under legal hold and those still
// being written, and audits each deletion with its reason.
func (r *Recorder) Sweep(ctx context.Context, retention func(target string) time.Duration) (int, error) {
	metas, err := r.List(ctx, Filter{})
	if err != nil {
		return 0, err
	}
	now := r.now()
	var ids []string
	var gone []Meta
	for _, m := range metas {
		keep := retention(m.Target)
		if m.Status == StatusLive || keep <= 0 || r.cfg.Hold != nil && r.cfg.Hold(m.User) {
			continue
		}
		end := m.End
		if end.IsZero() {
			end = m.Start
		}
		if now.Sub(end) > keep {
			ids = append(ids, m.ID)
			gone = append(gone, m)
		}
	}
	if err := r.remove(ctx, ids); err != nil {
		return 0, err
	}
	for _, m := range gone {
		r.audit(ctx, audit.Event{Type: "recording.delete", Resource: "target:" + m.Target,
			Reason: "retention " + days(retention(m.Target)), Details: map[string]string{"recording": m.ID}})
	}
	return len(ids), nil
}

// remove deletes the files, index entries and search tokens of ids. The
// file goes first: an index entry without a file is visible (verify says
// "file missing"), a file without an index entry would be forgotten.
func (r *Recorder) remove(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
		if err := os.Remove(r.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("recording: delete %s: %w", id, err)
		}
		for _, k := range []string{keyMeta + id, keyLive + id} {
			if err := r.cfg.Store.Delete(ctx, k); err != nil {
				return fmt.Errorf("recording: delete %s: %w", id, err)
			}
		}
	}
	// Tokens are keyed by word first (for search), so finding one
	// recording's tokens means one scan of all of them.
	kvs, err := r.cfg.Store.List(ctx, keyTok)
	if err != nil {
		return fmt.Errorf("recording: delete tokens: %w", err)
	}
	for _, kv := range kvs {
		if i := strings.LastIndexByte(kv.Key, '/'); i >= 0 && set[kv.Key[i+1:]] {
			if err := r.cfg.Store.Delete(ctx, kv.Key); err != nil {
				return fmt.Errorf("recording: delete tokens: %w", err)
			}
		}
	}
	return nil
}

// Recover marks the recordings that this replica indexed as live, but that
// no writer of this process holds, as incomplete: the process that wrote
// them stopped (crash, kill -9) before sealing. Run it once at start.
func (r *Recorder) Recover(ctx context.Context) (int, error) {
	metas, err := r.List(ctx, Filter{Status: StatusLive})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range metas {
		r.mu.Lock()
		_, open := r.live[m.ID]
		r.mu.Unlock()
		if open || m.Replica != r.cfg.Replica {
			continue
		}
		m.Status, m.EndReason = StatusIncomplete, "gatehouse stopped before the session ended"
		m.End = r.now().UTC()
		if fi, err := os.Stat(r.path(m.ID)); err == nil {
			m.End = fi.ModTime().UTC() // the last flush
		}
		if err := r.putMeta(ctx, m); err != nil {
			return n, err
		}
		if err := r.cfg.Store.Delete(ctx, keyLive+m.ID); err != nil {
			return n, fmt.Errorf("recording: %w", err)
		}
		n++
	}
	return n, nil
}

// days renders a retention as the config writes it ("90d"), or as a Go
// duration when it is not whole days.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}
