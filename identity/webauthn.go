package identity

import (
	"context"
	"io"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
)

// Enrolment and ceremony limits.
const (
	// EnrollWindow is how soon after the SSO login the first key must be
	// enrolled, and how fresh the assertion must be to add another key.
	EnrollWindow = 5 * time.Minute
	// CeremonyTTL bounds a started WebAuthn ceremony.
	CeremonyTTL = 5 * time.Minute
	// MaxResponseBytes bounds a browser's ceremony response.
	MaxResponseBytes = 64 << 10
)

// WebAuthnConfig configures the relying party.
type WebAuthnConfig struct {
	// PublicURL is the portal's URL: its host is the RP ID, its origin the
	// only accepted origin.
	PublicURL string
	// DisplayName is shown by authenticators; empty means "Gatehouse".
	DisplayName string
	// Enrollment is config.EnrollmentOpen ("" is the same) or
	// config.EnrollmentInvite.
	Enrollment string
}

// WebAuthn runs enrolment and assertion ceremonies with user verification
// required, against the server-side ceremony state of one session
// (single-use: a replayed response finds no state). Successful ceremonies
// update the session's MFA time. It is safe for concurrent use.
type WebAuthn struct {
	d Deps
}

// NewWebAuthn returns a WebAuthn over users, sessions and invites (invites
// may be nil unless cfg.Enrollment is "invite").
func NewWebAuthn(d Deps, cfg WebAuthnConfig, users *Users, sessions *Sessions, invites *Invites) (*WebAuthn, error) {
	return nil, errNotReady
}

// HasCredentials reports whether email has at least one security key, i.e.
// whether the portal should ask for an assertion rather than an enrolment.
func (w *WebAuthn) HasCredentials(ctx context.Context, email string) (bool, error) {
	return false, errNotReady
}

// BeginRegistration starts enrolling a key for the session's user and
// returns the options for navigator.credentials.create (JSON-encode it as
// is). The first key may be enrolled only within EnrollWindow of the SSO
// login and, in invite mode, with a valid invite token (checked here,
// consumed by FinishRegistration); another key needs an assertion within
// EnrollWindow. inviteToken is ignored when not needed.
func (w *WebAuthn) BeginRegistration(ctx context.Context, sess *Session, inviteToken string) (*protocol.CredentialCreation, error) {
	return nil, errNotReady
}

// FinishRegistration verifies the browser's response (the JSON of the
// PublicKeyCredential, at most MaxResponseBytes) against the session's
// ceremony, stores the credential under name, marks the session's MFA time
// and returns the updated session.
func (w *WebAuthn) FinishRegistration(ctx context.Context, sess *Session, name string, body io.Reader) (*Session, error) {
	return nil, errNotReady
}

// BeginAssertion starts an assertion for the session's user and returns the
// options for navigator.credentials.get. It fails with ErrNotFound when the
// user has no key (enrol first).
func (w *WebAuthn) BeginAssertion(ctx context.Context, sess *Session) (*protocol.CredentialAssertion, error) {
	return nil, errNotReady
}

// FinishAssertion verifies the browser's response against the session's
// ceremony (consumed: a replay fails with ErrNotFound), with user
// verification required and the signature counter checked: a non-zero
// counter that does not exceed the stored one fails with ErrClonedKey and is
// audited. On success it marks the session's MFA time and returns it.
func (w *WebAuthn) FinishAssertion(ctx context.Context, sess *Session, body io.Reader) (*Session, error) {
	return nil, errNotReady
}

// Credentials lists the user's keys (for the portal's key page).
func (w *WebAuthn) Credentials(ctx context.Context, email string) ([]Credential, error) {
	return nil, errNotReady
}

// RemoveCredential removes one of the session user's keys. It needs a full
// session with an assertion within EnrollWindow (ErrMFARequired) and
// refuses the last key (ErrLastKey).
func (w *WebAuthn) RemoveCredential(ctx context.Context, sess *Session, credentialID []byte) error {
	return errNotReady
}

// RenameCredential changes the display name of one of the user's keys.
func (w *WebAuthn) RenameCredential(ctx context.Context, sess *Session, credentialID []byte, name string) error {
	return errNotReady
}
