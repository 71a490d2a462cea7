package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/store"
)

// LockKind says what a lock stands on.
type LockKind string

// The kinds of lock.
const (
	// LockPerson locks a person out everywhere (web and SSH); its name is
	// the email.
	LockPerson LockKind = "user"
	// LockKey refuses one SSH public key, whoever it is bound to; its name
	// is the key's SHA256 fingerprint as ssh-keygen -lf prints it.
	LockKey LockKind = "key"
	// LockTarget refuses every SSH connection to one configured target.
	LockTarget LockKind = "target"
)

// LockRef names one lock. The zero value names nothing.
//
// In the store a lock lives at "lock/<email>" (person, as before keys and
// targets could be locked), "lock/key/<fingerprint>" or
// "lock/target/<name>", all under "lock/" so that one List reads them all.
// The kinds cannot collide: an email has an '@' (Lock refuses one without),
// a fingerprint ("SHA256:" and base64) and a target name (lowercase
// letters, digits and dashes, config.ValidTargetName) never do.
type LockRef struct {
	Kind LockKind
	Name string
}

// PersonLock, KeyLock and TargetLock name a lock of each kind.
func PersonLock(email string) LockRef { return LockRef{LockPerson, normEmail(email)} }

// KeyLock names the lock on an SSH key fingerprint.
func KeyLock(fingerprint string) LockRef { return LockRef{LockKey, fingerprint} }

// TargetLock names the lock on a target.
func TargetLock(name string) LockRef { return LockRef{LockTarget, name} }

// Message is what Locks publish on LockChannel for r: the bare email for a
// person (what every reader understood before keys and targets could be
// locked), "key/<fingerprint>" or "target/<name>" otherwise. A reader that
// only knows emails matches nobody with the latter.
func (r LockRef) Message() []byte {
	if r.Kind == LockPerson {
		return []byte(r.Name)
	}
	return []byte(string(r.Kind) + "/" + r.Name)
}

// ParseLockMessage reads a message published on LockChannel. Anything
// that is not a key or target message is a person's email.
func ParseLockMessage(m []byte) LockRef {
	s := string(m)
	if !strings.Contains(s, "@") {
		if fp, ok := strings.CutPrefix(s, "key/"); ok {
			return KeyLock(fp)
		}
		if name, ok := strings.CutPrefix(s, "target/"); ok {
			return TargetLock(name)
		}
	}
	return PersonLock(s)
}

// String is the lock as people read it: "user ann@example.com".
func (r LockRef) String() string { return string(r.Kind) + " " + r.Name }

// Refusal is the short text shown to someone refused or cut off by r.
func (r LockRef) Refusal() string {
	switch r.Kind {
	case LockKey:
		return "key " + r.Name + " is locked"
	case LockTarget:
		return "target " + r.Name + " is locked"
	}
	return "account locked"
}

func (r LockRef) storeKey() string {
	if r.Kind == LockPerson {
		return lockKey(r.Name)
	}
	return "lock/" + string(r.Kind) + "/" + r.Name
}

// valid checks r's name for its kind.
func (r LockRef) valid() error {
	switch r.Kind {
	case LockPerson:
		if !strings.Contains(r.Name, "@") {
			return fmt.Errorf("identity: lock: %q is not an email", r.Name)
		}
	case LockKey:
		if !ValidFingerprint(r.Name) {
			return fmt.Errorf("identity: lock: %q is not a key fingerprint (SHA256:..., as ssh-keygen -lf prints it)", r.Name)
		}
	case LockTarget:
		if !config.ValidTargetName(r.Name) {
			return fmt.Errorf("identity: lock: %q is not a target name", r.Name)
		}
	default:
		return fmt.Errorf("identity: lock: unknown kind %q", r.Kind)
	}
	return nil
}

// ValidFingerprint reports whether fp is an SSH key's SHA256 fingerprint:
// "SHA256:" and 43 characters of unpadded base64 (32 bytes).
func ValidFingerprint(fp string) bool {
	b64, ok := strings.CutPrefix(fp, "SHA256:")
	if !ok {
		return false
	}
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	return err == nil && len(raw) == 32
}

// lockFromKey is the inverse of storeKey for a key read from the store.
func lockFromKey(k string) LockRef {
	rest := strings.TrimPrefix(k, "lock/")
	if !strings.Contains(rest, "@") {
		if fp, ok := strings.CutPrefix(rest, "key/"); ok {
			return KeyLock(fp)
		}
		if name, ok := strings.CutPrefix(rest, "target/"); ok {
			return TargetLock(name)
		}
	}
	return LockRef{LockPerson, rest}
}

// Place locks r. A person's lock is Lock (sessions revoked, keys unbound);
// a key's lock also removes that key's binding, so that it needs a new
// approval once unlocked; a target's lock only refuses. The lock is written
// first, then published on LockChannel (every replica ends the matching
// live connections), then audited with by as actor; every step is
// attempted and the first error returned.
func (l *Locks) Place(ctx context.Context, r LockRef, by, reason string) error {
	if r.Kind == LockPerson {
		return l.Lock(ctx, r.Name, by, reason)
	}
	if err := r.valid(); err != nil {
		return err
	}
	if err := l.indexAdd(ctx, r.storeKey()); err != nil {
		return err
	}
	if err := l.d.Store.Set(ctx, r.storeKey(), l.record(by, reason), 0); err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	// Again after the write: a Lift of the same lock racing this Place may
	// have dropped the entry between the first add and the write.
	if err := l.indexAdd(ctx, r.storeKey()); err != nil {
		return err
	}
	var errU error
	if r.Kind == LockKey {
		if err := l.d.Store.Delete(ctx, bindKey(r.Name)); err != nil && !errors.Is(err, store.ErrNotFound) {
			errU = fmt.Errorf("unbind key: %w", err)
		}
	}
	errP := l.d.Store.Publish(ctx, LockChannel, r.Message())
	errA := l.d.record(ctx, audit.Event{
		Type: EventLock, Actor: by, Resource: string(r.Kind) + ":" + r.Name, Action: "lock",
		Decision: audit.Allow, Reason: reason,
	})
	return errors.Join(errU, errP, errA)
}

// Lift removes the lock r and audits it with by as actor.
func (l *Locks) Lift(ctx context.Context, r LockRef, by string) error {
	if r.Kind == LockPerson {
		return l.Unlock(ctx, r.Name, by)
	}
	if err := r.valid(); err != nil {
		return err
	}
	if err := l.indexRemove(ctx, r.storeKey()); err != nil {
		return err
	}
	if err := l.d.Store.Delete(ctx, r.storeKey()); err != nil {
		return fmt.Errorf("remove lock: %w", err)
	}
	return l.d.record(ctx, audit.Event{Type: EventUnlock, Actor: by, Resource: string(r.Kind) + ":" + r.Name, Action: "unlock", Decision: audit.Allow})
}

// record is the stored value of a lock: who placed it, why and when.
func (l *Locks) record(by, reason string) []byte {
	rec, _ := json.Marshal(struct {
		By     string `json:"by"`
		Reason string `json:"reason"`
		At     string `json:"at"`
	}{by, reason, l.d.Now().UTC().Format("2006-01-02T15:04:05Z")})
	return rec
}

// Held returns the first of refs that is locked (refs with an empty name
// are skipped), from one store read of them all. A store error is returned
// and the caller fails closed.
func (l *Locks) Held(ctx context.Context, refs ...LockRef) (LockRef, bool, error) {
	asked := make([]LockRef, 0, len(refs))
	keys := make([]string, 0, len(refs))
	for _, r := range refs {
		if r.Name != "" {
			asked = append(asked, r)
			keys = append(keys, r.storeKey())
		}
	}
	if len(keys) == 0 {
		return LockRef{}, false, nil
	}
	vals, err := readMany(ctx, l.d.Store, keys)
	if err != nil {
		return LockRef{}, false, err
	}
	for i, v := range vals {
		if v != nil {
			return asked[i], true, nil
		}
	}
	return LockRef{}, false, nil
}

// readMany reads the locks at keys, one value per key: a store answering
// with any other count fails the check instead of reading as unlocked.
func readMany(ctx context.Context, st kvStore, keys []string) ([][]byte, error) {
	vals, err := st.GetMany(ctx, keys...)
	if err == nil && len(vals) != len(keys) {
		err = fmt.Errorf("%d values for %d keys", len(vals), len(keys))
	}
	if err != nil {
		return nil, fmt.Errorf("read lock: %w", err)
	}
	return vals, nil
}

// LockSet is every lock at one moment (Locks.All).
type LockSet struct {
	m map[LockRef]bool
}

// NewLockSet returns a set holding refs (for tests and fakes).
func NewLockSet(refs ...LockRef) LockSet {
	s := LockSet{m: map[LockRef]bool{}}
	for _, r := range refs {
		s.m[r] = true
	}
	return s
}

// People returns the emails of the locked people in s.
func (s LockSet) People() []string {
	var out []string
	for r := range s.m {
		if r.Kind == LockPerson {
			out = append(out, r.Name)
		}
	}
	return out
}

// Len is the number of locks in s.
func (s LockSet) Len() int { return len(s.m) }

// Holds returns the lock in s, if any, that stands on a person with email,
// using the key fingerprint, to the target ("" for none).
func (s LockSet) Holds(email, fingerprint, target string) (LockRef, bool) {
	for _, r := range []LockRef{PersonLock(email), KeyLock(fingerprint), TargetLock(target)} {
		if r.Name != "" && s.m[r] {
			return r, true
		}
	}
	return LockRef{}, false
}
