package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// BeginRegistration starts enrolling a key for the session's user and
// returns the options for navigator.credentials.create (JSON-encode it as
// is). The first key may be enrolled only within EnrollWindow of the SSO
// login and, in invite mode, with a valid invite token (checked here,
// consumed by FinishRegistration); another key needs an assertion within
// EnrollWindow (ErrMFARequired). inviteToken is ignored when not needed.
func (w *WebAuthn) BeginRegistration(ctx context.Context, sess *Session, inviteToken string) (*protocol.CredentialCreation, error) {
	if err := w.portalSession(ctx, sess); err != nil {
		return nil, err
	}
	now := w.d.Now()
	r, _, err := w.users.load(ctx, sess.Email)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	c := &ceremony{Kind: kindRegister, Email: normEmail(sess.Email)}
	if r == nil || len(r.Creds) == 0 {
		c.First = true
		if now.Sub(sess.SSOAt) > EnrollWindow || sess.SSOAt.After(now) {
			w.d.deny(ctx, EventEnroll, sess.Email, "first enrolment more than 5 minutes after sign-in", nil)
			return nil, fmt.Errorf("%w: the first key must be enrolled right after signing in; sign in again", ErrForbidden)
		}
		if w.invite {
			if err := w.invites.check(ctx, inviteToken, sess.Email); err != nil {
				w.d.deny(ctx, EventEnroll, sess.Email, "first enrolment without a valid invite", nil)
				return nil, err
			}
			c.Invite = hashToken(inviteToken)
		}
		if r == nil {
			id, err := randomBytes(32)
			if err != nil {
				return nil, err
			}
			r = &userRecord{Email: sess.Email, WebAuthnID: id, Created: now}
		}
	} else {
		if sess.Pending() || now.Sub(sess.MFAAt) > EnrollWindow {
			return nil, ErrMFARequired
		}
		if len(r.Creds) >= maxCredentials {
			return nil, fmt.Errorf("%w: at most %d keys", ErrForbidden, maxCredentials)
		}
	}
	excl := make([]protocol.CredentialDescriptor, 0, len(r.Creds))
	for i := range r.Creds {
		excl = append(excl, r.Creds[i].WA.Descriptor())
	}
	opts, data, err := w.wa.BeginRegistration(waUser{r},
		webauthn.WithExclusions(excl),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationRequired,
		}))
	if err != nil {
		return nil, fmt.Errorf("begin registration: %w", err)
	}
	c.Data = *data
	if err := w.saveCeremony(ctx, sess, c); err != nil {
		return nil, err
	}
	return opts, nil
}

// FinishRegistration verifies the browser's response (the JSON of the
// PublicKeyCredential, at most MaxResponseBytes) against the session's
// ceremony, stores the credential under name, marks the session's MFA time
// and returns the updated session.
func (w *WebAuthn) FinishRegistration(ctx context.Context, sess *Session, name string, body io.Reader) (*Session, error) {
	if err := w.portalSession(ctx, sess); err != nil {
		return nil, err
	}
	fail := func(reason string, err error) (*Session, error) {
		w.d.deny(ctx, EventEnroll, sess.Email, reason, nil)
		return nil, err
	}
	c, err := w.takeCeremony(ctx, sess, kindRegister)
	if err != nil {
		return fail("no enrolment in progress (replayed or expired)", err)
	}
	b, err := readResponse(body)
	if err != nil {
		return fail("unreadable response", err)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(b)
	if err != nil {
		return fail("malformed registration", fmt.Errorf("%w: parse registration: %w", ErrForbidden, err))
	}
	now := w.d.Now()
	r, _, err := w.users.load(ctx, sess.Email)
	if errors.Is(err, ErrNotFound) && c.First {
		r, err = &userRecord{Email: sess.Email, WebAuthnID: c.Data.UserID, Created: now}, nil
	}
	if err != nil {
		return fail("user vanished", err)
	}
	cred, err := w.wa.CreateCredential(waUser{r}, c.Data, parsed)
	if err != nil {
		return fail("registration did not verify", fmt.Errorf("%w: verify registration: %w", ErrForbidden, err))
	}
	if !cred.Flags.UserVerified {
		return fail("user verification missing", fmt.Errorf("%w: user verification required", ErrForbidden))
	}
	if c.Invite != "" {
		if err := w.invites.consume(ctx, c.Invite, sess.Email); err != nil {
			return fail("invite already used or expired", err)
		}
	}
	if name = cleanKeyName(name); name == "" {
		name = "Security key"
	}
	_, err = w.users.update(ctx, sess.Email, func(cur *userRecord) (*userRecord, error) {
		if cur == nil {
			if !c.First {
				return nil, fmt.Errorf("%w: user vanished", ErrNotFound)
			}
			cur = &userRecord{Email: sess.Email, WebAuthnID: c.Data.UserID, Created: now}
		}
		if !bytes.Equal(cur.WebAuthnID, c.Data.UserID) {
			return nil, fmt.Errorf("%w: user handle changed", ErrForbidden)
		}
		if c.First && len(cur.Creds) > 0 {
			return nil, fmt.Errorf("%w: another key was enrolled meanwhile; assert with it to add more", ErrForbidden)
		}
		if len(cur.Creds) >= maxCredentials {
			return nil, fmt.Errorf("%w: at most %d keys", ErrForbidden, maxCredentials)
		}
		for i := range cur.Creds {
			if bytes.Equal(cur.Creds[i].WA.ID, cred.ID) {
				return nil, fmt.Errorf("%w: key already enrolled", ErrForbidden)
			}
		}
		cur.Creds = append(cur.Creds, credRecord{Name: name, Created: now, LastUsed: now, WA: *cred})
		return cur, nil
	})
	if err != nil {
		return fail("could not store key", err)
	}
	if err := w.d.record(ctx, audit.Event{Type: EventEnroll, Actor: sess.Email, Session: sess.Handle[:16], Decision: audit.Allow,
		Details: map[string]string{"credential": credLabel(cred.ID), "name": name, "first": fmt.Sprint(c.First)}}); err != nil {
		return nil, err
	}
	return w.sessions.completeMFA(ctx, sess, now)
}
