package identity

import (
	"context"
	"time"
)

// Credential is one registered security key or passkey.
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

// Users reads people and their credentials from "identity/user/<email>".
// All changes are compare-and-swap, so replicas never lose an update.
type Users struct {
	d Deps
}

// NewUsers returns a Users.
func NewUsers(d Deps) (*Users, error) {
	return nil, errNotReady
}

// Get returns the user with email, or ErrNotFound.
func (u *Users) Get(ctx context.Context, email string) (*User, error) {
	return nil, errNotReady
}

// Purge deletes the user's record and credentials (for `gatehouse purge`).
func (u *Users) Purge(ctx context.Context, email string) error {
	return errNotReady
}
