package recording

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
)

// Store keys of the index. Search tokens are HMACs (keys.token), so the
// store holds no word in clear; the value of a token key is empty.
const (
	keyMeta = "rec/meta/" // <id> -> Meta JSON
	keyTok  = "rec/tok/"  // <hex hmac>/<id> -> ""
	keyLive = "rec/live/" // <id> -> replica, while a writer is open
)

// errNoWords is returned for a query that has no searchable word.
var errNoWords = errors.New("recording: the query has no searchable word (2 to 64 letters, digits or _-./)")

func (r *Recorder) putMeta(ctx context.Context, m Meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := r.cfg.Store.Set(ctx, keyMeta+m.ID, b, 0); err != nil {
		return fmt.Errorf("recording: index %s: %w", m.ID, err)
	}
	return nil
}

// Get returns the index entry of a recording, or ErrNotFound.
func (r *Recorder) Get(ctx context.Context, id string) (Meta, error) {
	if !validID(id) {
		return Meta{}, ErrNotFound
	}
	b, err := r.cfg.Store.Get(ctx, keyMeta+id)
	if errors.Is(err, store.ErrNotFound) {
		return Meta{}, ErrNotFound
	}
	if err != nil {
		return Meta{}, fmt.Errorf("recording: %w", err)
	}
	return decodeMeta(id, b)
}

// decodeMeta decodes the stored index entry b of recording id.
func decodeMeta(id string, b []byte) (Meta, error) {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("recording: index entry %s: %w", id, err)
	}
	return m, nil
}

// getMany returns the index entries of ids with one store read (not one
// per match: a search may match thousands), skipping those deleted
// between the token and the entry.
func (r *Recorder) getMany(ctx context.Context, ids []string) ([]Meta, error) {
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		if validID(id) {
			keys = append(keys, keyMeta+id)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	vals, err := r.cfg.Store.GetMany(ctx, keys...)
	if err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	metas := make([]Meta, 0, len(vals))
	for i, b := range vals {
		if b == nil {
			continue
		}
		m, err := decodeMeta(keys[i][len(keyMeta):], b)
		if err != nil {
			return nil, err
		}
		metas = append(metas, m)
	}
	return metas, nil
}

// indexWords writes the search tokens of words for recording id, all in
// one store write: a flush of log output can bring thousands of new words,
// and a write per word cost an fsync per word on the embedded store and a
// round trip per word on Redis.
func (r *Recorder) indexWords(ctx context.Context, id string, words []string) error {
	kvs := make([]store.KV, len(words))
	for i, w := range words {
		kvs[i] = store.KV{Key: keyTok + r.keys.token(w) + "/" + id}
	}
	if err := r.cfg.Store.SetMany(ctx, kvs, 0); err != nil {
		return fmt.Errorf("recording: index words of %s: %w", id, err)
	}
	return nil
}

// List returns the recordings that match f, newest first.
func (r *Recorder) List(ctx context.Context, f Filter) ([]Meta, error) {
	var metas []Meta
	if strings.TrimSpace(f.Query) != "" {
		ids, err := r.search(ctx, f.Query)
		if err != nil {
			return nil, err
		}
		if metas, err = r.getMany(ctx, ids); err != nil {
			return nil, err
		}
	} else {
		kvs, err := r.cfg.Store.List(ctx, keyMeta)
		if err != nil {
			return nil, fmt.Errorf("recording: list: %w", err)
		}
		metas = make([]Meta, 0, len(kvs))
		for _, kv := range kvs {
			var m Meta
			if err := json.Unmarshal(kv.Value, &m); err != nil {
				r.log.WarnContext(ctx, "Skipping an unreadable recording index entry.", "key", kv.Key, "error", err)
				continue
			}
			metas = append(metas, m)
		}
	}
	now := r.now()
	out := metas[:0]
	for _, m := range metas {
		if f.matches(m, now) {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.After(out[j].Start)
		}
		return out[i].ID < out[j].ID
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// search returns the IDs of recordings that contain every word of q.
func (r *Recorder) search(ctx context.Context, q string) ([]string, error) {
	words := queryWords(q)
	if len(words) == 0 {
		return nil, errNoWords
	}
	var hit map[string]bool
	for _, w := range words {
		prefix := keyTok + r.keys.token(w) + "/"
		kvs, err := r.cfg.Store.List(ctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("recording: search: %w", err)
		}
		next := make(map[string]bool, len(kvs))
		for _, kv := range kvs {
			id := kv.Key[len(prefix):]
			if hit == nil || hit[id] {
				next[id] = true
			}
		}
		hit = next
		if len(hit) == 0 {
			return nil, nil
		}
	}
	ids := make([]string, 0, len(hit))
	for id := range hit {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

// matches applies every field of f except Query and Limit.
func (f Filter) matches(m Meta, now time.Time) bool {
	if f.User != "" && !strings.EqualFold(f.User, m.User) ||
		f.Target != "" && f.Target != m.Target ||
		f.Login != "" && f.Login != m.Login ||
		f.Status != "" && f.Status != m.Status {
		return false
	}
	if !f.Since.IsZero() && m.Start.Before(f.Since) || !f.Until.IsZero() && !m.Start.Before(f.Until) {
		return false
	}
	end := m.End
	if end.IsZero() {
		end = now
	}
	d := end.Sub(m.Start)
	return (f.MinDuration == 0 || d >= f.MinDuration) && (f.MaxDuration == 0 || d <= f.MaxDuration)
}

// validID reports whether id can name a file and a store key: 1..64 of
// [A-Za-z0-9_-].
func validID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
