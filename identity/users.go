package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/go-webauthn/webauthn/webauthn"
)

// Credential is one registered security key or passkey, as the portal
// shows it.
type Credential struct {
	ID              []byte    `json:"id"`
	PublicKey       []byte    `json:"public_key"`
	AttestationType string    `json:"attestation_type,omitempty"`
	Transports      []string  `json:"transports,omitempty"`
	SignCount       uint32    `json:"sign_count"`
	AAGUID          []byte    `json:"aaguid,omitempty"`
	Name            string    `json:"name"`
	Created         time.Time `json:"created"`
	LastUsed        time.Time `json:"last_used,omitzero"`
	UserVerified    bool      `json:"uv"`
	BackupEligible  bool      `json:"backup_eligible"`
	BackupState     bool      `json:"backup_state"`
}

// User is one person, keyed by email, with their credentials.
type User struct {
	Email string `json:"email"`
	// WebAuthnID is the random user handle given to authenticators.
	WebAuthnID  []byte       `json:"webauthn_id"`
	Credentials []Credential `json:"credentials"`
	Created     time.Time    `json:"created"`
}

// userRecord is what the store keeps: the library's full credential record
// next to our metadata.
type userRecord struct {
	Email      string       `json:"email"`
	WebAuthnID []byte       `json:"webauthn_id"`
	Created    time.Time    `json:"created"`
	Creds      []credRecord `json:"creds"`
}

type credRecord struct {
	Name     string              `json:"name"`
	Created  time.Time           `json:"created"`
	LastUsed time.Time           `json:"last_used,omitzero"`
	WA       webauthn.Credential `json:"wa"`
}

// public converts the record for callers.
func (r *userRecord) public() *User {
	u := &User{Email: r.Email, WebAuthnID: r.WebAuthnID, Created: r.Created}
	for _, c := range r.Creds {
		tr := make([]string, len(c.WA.Transport))
		for i, t := range c.WA.Transport {
			tr[i] = string(t)
		}
		u.Credentials = append(u.Credentials, Credential{
			ID: c.WA.ID, PublicKey: c.WA.PublicKey, AttestationType: c.WA.AttestationType,
			Transports: tr, SignCount: c.WA.Authenticator.SignCount, AAGUID: c.WA.Authenticator.AAGUID,
			Name: c.Name, Created: c.Created, LastUsed: c.LastUsed,
			UserVerified: c.WA.Flags.UserVerified, BackupEligible: c.WA.Flags.BackupEligible, BackupState: c.WA.Flags.BackupState,
		})
	}
	return u
}

// waUser adapts a record to go-webauthn's User.
type waUser struct{ r *userRecord }

func (u waUser) WebAuthnID() []byte          { return u.r.WebAuthnID }
func (u waUser) WebAuthnName() string        { return u.r.Email }
func (u waUser) WebAuthnDisplayName() string { return u.r.Email }
func (u waUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, len(u.r.Creds))
	for i, c := range u.r.Creds {
		out[i] = c.WA
	}
	return out
}

var _ webauthn.User = waUser{}

// Users reads people and their credentials from "identity/user/<email>".
// All changes are compare-and-swap, so replicas never lose an update.
type Users struct {
	d Deps
}

// NewUsers returns a Users.
func NewUsers(d Deps) (*Users, error) {
	d, err := d.check()
	if err != nil {
		return nil, err
	}
	return &Users{d: d}, nil
}

func userKey(email string) string { return "identity/user/" + emailKey(email) }

// Get returns the user with email, or ErrNotFound.
func (u *Users) Get(ctx context.Context, email string) (*User, error) {
	r, _, err := u.load(ctx, email)
	if err != nil {
		return nil, err
	}
	return r.public(), nil
}

// load returns the stored record and its raw bytes, or ErrNotFound.
func (u *Users) load(ctx context.Context, email string) (*userRecord, []byte, error) {
	raw, err := u.d.Store.Get(ctx, userKey(email))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load user: %w", err)
	}
	var r userRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, nil, fmt.Errorf("decode user: %w", err)
	}
	return &r, raw, nil
}

// update applies fn to the user's record (nil when absent: fn may create
// it) with compare-and-swap and retries on conflict. fn must be pure: it
// may run several times.
func (u *Users) update(ctx context.Context, email string, fn func(r *userRecord) (*userRecord, error)) (*userRecord, error) {
	for attempt := 0; attempt < 8; attempt++ {
		r, raw, err := u.load(ctx, email)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		next, err := fn(r)
		if err != nil {
			return nil, err
		}
		nextRaw, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		ok, err := u.d.Store.CompareAndSwap(ctx, userKey(email), raw, nextRaw, 0)
		if err != nil {
			return nil, fmt.Errorf("store user: %w", err)
		}
		if ok {
			return next, nil
		}
	}
	return nil, errors.New("identity: user update kept conflicting")
}

// Purge deletes the user's record and credentials (for `gatehouse purge`).
func (u *Users) Purge(ctx context.Context, email string) error {
	if err := u.d.Store.Delete(ctx, userKey(email)); err != nil {
		return fmt.Errorf("purge user: %w", err)
	}
	return nil
}
