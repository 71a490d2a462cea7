package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// Enrolment and ceremony limits.
const (
	// EnrollWindow is how soon after the SSO login the first key must be
	// enrolled, and how fresh the assertion must be to add or remove a key.
	EnrollWindow = 5 * time.Minute
	// CeremonyTTL bounds a started WebAuthn ceremony.
	CeremonyTTL = 5 * time.Minute
	// MaxResponseBytes bounds a browser's ceremony response.
	MaxResponseBytes = 64 << 10
	// maxCredentials bounds the keys one person may register.
	maxCredentials = 20
	// maxKeyName bounds a key's display name, in runes.
	maxKeyName = 64
)

// Ceremony kinds.
const (
	kindRegister = "register"
	kindAssert   = "assert"
)

// WebAuthnConfig configures the relying party.
type WebAuthnConfig struct {
	// PublicURL is the portal's URL: its host is the RP ID, its origin the
	// only accepted origin. It must be https.
	PublicURL string
	// DisplayName is shown by authenticators; empty means "Gatehouse".
	DisplayName string
	// Enrollment is config.EnrollmentOpen or config.EnrollmentInvite
	// (webauthn.enrollment, which config resolves to open when absent).
	// Anything else, empty included, is refused: whether strangers may
	// enrol is never guessed here.
	Enrollment string
}

// WebAuthn runs enrolment and assertion ceremonies with user verification
// required, against the server-side ceremony state of one portal session
// (single-use: a replayed response finds no state). Successful ceremonies
// update the session's MFA time. It is safe for concurrent use.
type WebAuthn struct {
	d        Deps
	wa       *webauthn.WebAuthn
	invite   bool
	users    *Users
	sessions *Sessions
	invites  *Invites
}

// ceremony is the server-side state of one started ceremony.
type ceremony struct {
	Kind   string               `json:"kind"`
	Email  string               `json:"email"`
	Data   webauthn.SessionData `json:"data"`
	First  bool                 `json:"first,omitempty"`  // first enrolment of this person
	Invite string               `json:"invite,omitempty"` // hash of the invite token to consume
}

func ceremonyKey(sessionHandle string) string { return "identity/ceremony/" + sessionHandle }

// NewWebAuthn returns a WebAuthn over users, sessions and invites (invites
// may be nil unless cfg.Enrollment is "invite").
func NewWebAuthn(d Deps, cfg WebAuthnConfig, users *Users, sessions *Sessions, invites *Invites) (*WebAuthn, error) {
	d, err := d.check()
	if err != nil {
		return nil, err
	}
	if users == nil || sessions == nil {
		return nil, errors.New("identity: NewWebAuthn needs users and sessions")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return nil, fmt.Errorf("identity: webauthn: public_url %q must be an https URL", cfg.PublicURL)
	}
	var invite bool
	switch cfg.Enrollment {
	case config.EnrollmentOpen:
	case config.EnrollmentInvite:
		if invites == nil {
			return nil, errors.New("identity: webauthn: invite enrolment needs Invites")
		}
		invite = true
	default:
		return nil, fmt.Errorf("identity: webauthn: unknown enrollment %q", cfg.Enrollment)
	}
	name := cfg.DisplayName
	if name == "" {
		name = "Gatehouse"
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  u.Hostname(),
		RPDisplayName:         name,
		RPOrigins:             []string{u.Scheme + "://" + u.Host},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationRequired,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("identity: webauthn: %w", err)
	}
	return &WebAuthn{d: d, wa: wa, invite: invite, users: users, sessions: sessions, invites: invites}, nil
}

// portalSession checks that sess can run a ceremony: a portal session of a
// person who is not locked.
func (w *WebAuthn) portalSession(ctx context.Context, sess *Session) error {
	if sess == nil || sess.Parent != "" || sess.Email == "" || !validHandle(sess.Handle) {
		return fmt.Errorf("%w: webauthn needs a portal session", ErrForbidden)
	}
	return refuseLocked(ctx, w.d.Store, sess.Email)
}

// assertSession is portalSession for an assertion: a locked person's
// attempt is also audited (the alerter raises on it at once).
func (w *WebAuthn) assertSession(ctx context.Context, sess *Session) error {
	err := w.portalSession(ctx, sess)
	if errors.Is(err, ErrLocked) {
		w.d.deny(ctx, EventAssert, sess.Email, audit.ReasonLocked, nil)
	}
	return err
}

// HasCredentials reports whether email has at least one security key, i.e.
// whether the portal should ask for an assertion rather than an enrolment.
func (w *WebAuthn) HasCredentials(ctx context.Context, email string) (bool, error) {
	r, _, err := w.users.load(ctx, email)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(r.Creds) > 0, nil
}

// Credentials lists the user's keys (for the portal's key page).
func (w *WebAuthn) Credentials(ctx context.Context, email string) ([]Credential, error) {
	u, err := w.users.Get(ctx, email)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return u.Credentials, nil
}

// saveCeremony stores c for the session, replacing any earlier one.
func (w *WebAuthn) saveCeremony(ctx context.Context, sess *Session, c *ceremony) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := w.d.Store.Set(ctx, ceremonyKey(sess.Handle), raw, CeremonyTTL); err != nil {
		return fmt.Errorf("store ceremony: %w", err)
	}
	return nil
}

// takeCeremony consumes the session's ceremony of kind: whatever happens
// next, it cannot be used again.
func (w *WebAuthn) takeCeremony(ctx context.Context, sess *Session, kind string) (*ceremony, error) {
	raw, err := w.d.Store.GetDel(ctx, ceremonyKey(sess.Handle))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no ceremony in progress (used or expired)", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load ceremony: %w", err)
	}
	var c ceremony
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decode ceremony: %w", err)
	}
	if c.Kind != kind || c.Email != normEmail(sess.Email) {
		return nil, fmt.Errorf("%w: ceremony of another kind or user", ErrNotFound)
	}
	return &c, nil
}

// readResponse reads at most MaxResponseBytes of a browser response.
func readResponse(body io.Reader) ([]byte, error) {
	if body == nil {
		return nil, fmt.Errorf("%w: empty response", ErrForbidden)
	}
	b, err := io.ReadAll(io.LimitReader(body, MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if len(b) > MaxResponseBytes {
		return nil, fmt.Errorf("%w: response larger than %d bytes", ErrForbidden, MaxResponseBytes)
	}
	return b, nil
}

// BeginAssertion starts an assertion for the session's user and returns the
// options for navigator.credentials.get. It fails with ErrNotFound when the
// user has no key (enrol first).
func (w *WebAuthn) BeginAssertion(ctx context.Context, sess *Session) (*protocol.CredentialAssertion, error) {
	if err := w.assertSession(ctx, sess); err != nil {
		return nil, err
	}
	r, _, err := w.users.load(ctx, sess.Email)
	if err != nil {
		return nil, err
	}
	if len(r.Creds) == 0 {
		return nil, fmt.Errorf("%w: no security key enrolled", ErrNotFound)
	}
	opts, data, err := w.wa.BeginLogin(waUser{r}, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("begin assertion: %w", err)
	}
	if err := w.saveCeremony(ctx, sess, &ceremony{Kind: kindAssert, Email: normEmail(sess.Email), Data: *data}); err != nil {
		return nil, err
	}
	return opts, nil
}

// FinishAssertion verifies the browser's response against the session's
// ceremony (consumed: a replay fails with ErrNotFound), with user
// verification required and the signature counter checked: a non-zero
// counter that does not exceed the stored one fails with ErrClonedKey and is
// audited. On success it marks the session's MFA time and returns it.
func (w *WebAuthn) FinishAssertion(ctx context.Context, sess *Session, body io.Reader) (*Session, error) {
	if err := w.assertSession(ctx, sess); err != nil {
		return nil, err
	}
	fail := func(reason string, err error) (*Session, error) {
		w.d.deny(ctx, EventAssert, sess.Email, reason, nil)
		return nil, err
	}
	c, err := w.takeCeremony(ctx, sess, kindAssert)
	if err != nil {
		return fail("no assertion in progress (replayed or expired)", err)
	}
	b, err := readResponse(body)
	if err != nil {
		return fail("unreadable response", err)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(b)
	if err != nil {
		return fail("malformed assertion", fmt.Errorf("%w: parse assertion: %w", ErrForbidden, err))
	}
	r, _, err := w.users.load(ctx, sess.Email)
	if err != nil {
		return fail("user has no keys", err)
	}
	cred, err := w.wa.ValidateLogin(waUser{r}, c.Data, parsed)
	if err != nil {
		return fail("assertion did not verify", fmt.Errorf("%w: verify assertion: %w", ErrForbidden, err))
	}
	flags := parsed.Response.AuthenticatorData.Flags
	if !flags.HasUserVerified() {
		return fail("user verification missing", fmt.Errorf("%w: user verification required", ErrForbidden))
	}
	now := w.d.Now()
	got := parsed.Response.AuthenticatorData.Counter
	var stored uint32
	_, err = w.users.update(ctx, sess.Email, func(cur *userRecord) (*userRecord, error) {
		if cur == nil {
			return nil, ErrNotFound
		}
		for i := range cur.Creds {
			cr := &cur.Creds[i]
			if !bytes.Equal(cr.WA.ID, cred.ID) {
				continue
			}
			stored = cr.WA.Authenticator.SignCount
			if (got != 0 || stored != 0) && got <= stored {
				return nil, ErrClonedKey
			}
			cr.WA.Authenticator.SignCount = got
			cr.WA.Flags.UserVerified = true
			cr.WA.Flags.BackupState = flags.HasBackupState()
			cr.LastUsed = now
			return cur, nil
		}
		return nil, fmt.Errorf("%w: credential removed meanwhile", ErrNotFound)
	})
	if errors.Is(err, ErrClonedKey) {
		_ = w.d.record(ctx, audit.Event{Type: EventClonedKey, Actor: sess.Email, Decision: audit.Deny,
			Reason:  "signature counter did not advance: possible cloned authenticator",
			Details: map[string]string{"credential": credLabel(cred.ID), "stored_counter": fmt.Sprint(stored), "counter": fmt.Sprint(got)}})
		return nil, ErrClonedKey
	}
	if err != nil {
		return fail("could not record assertion", err)
	}
	if err := w.d.record(ctx, audit.Event{Type: EventAssert, Actor: sess.Email, Session: sess.Handle[:16], Decision: audit.Allow,
		Details: map[string]string{"credential": credLabel(cred.ID)}}); err != nil {
		return nil, err
	}
	return w.sessions.completeMFA(ctx, sess, now)
}

// RemoveCredential removes one of the session user's keys. It needs a full
// session with an assertion within EnrollWindow (ErrMFARequired) and
// refuses the last key (ErrLastKey).
func (w *WebAuthn) RemoveCredential(ctx context.Context, sess *Session, credentialID []byte) error {
	if err := w.portalSession(ctx, sess); err != nil {
		return err
	}
	if sess.Pending() || w.d.Now().Sub(sess.MFAAt) > EnrollWindow {
		return ErrMFARequired
	}
	_, err := w.users.update(ctx, sess.Email, func(cur *userRecord) (*userRecord, error) {
		if cur == nil {
			return nil, ErrNotFound
		}
		for i := range cur.Creds {
			if bytes.Equal(cur.Creds[i].WA.ID, credentialID) {
				if len(cur.Creds) == 1 {
					return nil, ErrLastKey
				}
				cur.Creds = append(cur.Creds[:i], cur.Creds[i+1:]...)
				return cur, nil
			}
		}
		return nil, fmt.Errorf("%w: no such key", ErrNotFound)
	})
	if err != nil {
		w.d.deny(ctx, EventKeyRemove, sess.Email, err.Error(), map[string]string{"credential": credLabel(credentialID)})
		return err
	}
	return w.d.record(ctx, audit.Event{Type: EventKeyRemove, Actor: sess.Email, Decision: audit.Allow,
		Details: map[string]string{"credential": credLabel(credentialID)}})
}

// RenameCredential changes the display name of one of the user's keys. It
// needs a full session.
func (w *WebAuthn) RenameCredential(ctx context.Context, sess *Session, credentialID []byte, name string) error {
	if err := w.portalSession(ctx, sess); err != nil {
		return err
	}
	if sess.Pending() {
		return ErrMFARequired
	}
	name = cleanKeyName(name)
	if name == "" {
		return fmt.Errorf("%w: empty key name", ErrForbidden)
	}
	_, err := w.users.update(ctx, sess.Email, func(cur *userRecord) (*userRecord, error) {
		if cur == nil {
			return nil, ErrNotFound
		}
		for i := range cur.Creds {
			if bytes.Equal(cur.Creds[i].WA.ID, credentialID) {
				cur.Creds[i].Name = name
				return cur, nil
			}
		}
		return nil, fmt.Errorf("%w: no such key", ErrNotFound)
	})
	return err
}

// cleanKeyName trims a key name and drops control and format characters.
func cleanKeyName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > maxKeyName {
		s = string(r[:maxKeyName])
	}
	return s
}

// credLabel is a short, non-secret label of a credential ID for audit.
func credLabel(id []byte) string {
	return hashToken(string(id))[:16]
}
