package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/store"
)

// KeyBindings bind an SSH public key fingerprint to a person after an
// approval, until the MFA age runs out. Keys: "identity/keybind/<fp>" and a
// per-user index "identity/userkey/<email>/<fp>" for Unbind.
type KeyBindings struct {
	d Deps
}

// binding is a stored key binding.
type binding struct {
	Email  string    `json:"email"`
	Groups []string  `json:"groups,omitempty"`
	MFAAt  time.Time `json:"mfa_at"`
}

// NewKeyBindings returns KeyBindings.
func NewKeyBindings(d Deps) (*KeyBindings, error) {
	d, err := d.check()
	if err != nil {
		return nil, err
	}
	return &KeyBindings{d: d}, nil
}

func bindKey(fp string) string { return "identity/keybind/" + url.PathEscape(fp) }

func userKeyPrefix(email string) string { return "identity/userkey/" + emailKey(email) + "/" }

// Bind binds fingerprint to s for ttl (which must be positive). It refuses
// a locked account.
func (k *KeyBindings) Bind(ctx context.Context, fingerprint string, s authz.Subject, ttl time.Duration) error {
	if fingerprint == "" || len(fingerprint) > 256 || s.Email == "" || ttl <= 0 {
		return errors.New("identity: bind: need fingerprint, email and a positive ttl")
	}
	if err := refuseLocked(ctx, k.d.Store, s.Email); err != nil {
		return err
	}
	raw, err := json.Marshal(binding{Email: s.Email, Groups: s.Groups, MFAAt: s.MFAAt})
	if err != nil {
		return err
	}
	if err := k.d.Store.Set(ctx, userKeyPrefix(s.Email)+url.PathEscape(fingerprint), nil, ttl); err != nil {
		return fmt.Errorf("index key binding: %w", err)
	}
	if err := k.d.Store.Set(ctx, bindKey(fingerprint), raw, ttl); err != nil {
		return fmt.Errorf("store key binding: %w", err)
	}
	// A lock that raced with us must win.
	if err := refuseLocked(ctx, k.d.Store, s.Email); err != nil {
		_ = k.d.Store.Delete(ctx, bindKey(fingerprint))
		return err
	}
	return k.d.record(ctx, audit.Event{Type: EventKeyBind, Actor: s.Email, Action: "bind", Decision: audit.Allow,
		Details: map[string]string{"fingerprint": fingerprint, "ttl": ttl.String()}})
}

// Lookup returns the subject bound to fingerprint, or an error wrapping
// store.ErrNotFound (and ErrNotFound) if none.
func (k *KeyBindings) Lookup(ctx context.Context, fingerprint string) (authz.Subject, error) {
	if fingerprint == "" || len(fingerprint) > 256 {
		return authz.Subject{}, fmt.Errorf("%w: %w", ErrNotFound, store.ErrNotFound)
	}
	raw, err := k.d.Store.Get(ctx, bindKey(fingerprint))
	if errors.Is(err, store.ErrNotFound) {
		return authz.Subject{}, fmt.Errorf("%w: %w", ErrNotFound, store.ErrNotFound)
	}
	if err != nil {
		return authz.Subject{}, fmt.Errorf("read key binding: %w", err)
	}
	var b binding
	if err := json.Unmarshal(raw, &b); err != nil {
		return authz.Subject{}, fmt.Errorf("decode key binding: %w", err)
	}
	return authz.Subject{Email: b.Email, Groups: slices.Clone(b.Groups), MFAAt: b.MFAAt}, nil
}

// Unbind removes every key bound to email and returns how many.
func (k *KeyBindings) Unbind(ctx context.Context, email string) (int, error) {
	kvs, err := k.d.Store.List(ctx, userKeyPrefix(email))
	if err != nil {
		return 0, fmt.Errorf("list key bindings: %w", err)
	}
	n := 0
	var errs []error
	for _, kv := range kvs {
		fp := kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]
		raw, err := k.d.Store.Get(ctx, "identity/keybind/"+fp)
		if err == nil {
			var b binding
			// Only remove the binding if it still belongs to this person.
			if json.Unmarshal(raw, &b) == nil && normEmail(b.Email) == normEmail(email) {
				if err := k.d.Store.Delete(ctx, "identity/keybind/"+fp); err != nil {
					errs = append(errs, err)
					continue
				}
				n++
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		if err := k.d.Store.Delete(ctx, kv.Key); err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}
