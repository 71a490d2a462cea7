package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	vw "github.com/descope/virtualwebauthn"
	"github.com/gatehouse-dev/gatehouse/config"
)

var testRP = vw.RelyingParty{ID: "gate.example.com", Name: "Gatehouse", Origin: "https://gate.example.com"}

// authenticator is a virtual security key with one credential.
type authenticator struct {
	rp   vw.RelyingParty
	auth vw.Authenticator
	cred vw.Credential
}

func newAuthenticator(opts vw.AuthenticatorOptions) *authenticator {
	return &authenticator{rp: testRP, auth: vw.NewAuthenticatorWithOptions(opts), cred: newCredential()}
}

// newCredential makes a P-256 credential. virtualwebauthn encodes the
// public key's coordinates with big.Int.Bytes, which drops leading zero
// bytes (about one key in 128), and go-webauthn rightly refuses such keys:
// pick a key whose coordinates are both 32 bytes long.
func newCredential() vw.Credential {
	for {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		pub, err := k.PublicKey.ECDH()
		if err != nil {
			panic(err)
		}
		if b := pub.Bytes(); b[1] == 0 || b[33] == 0 {
			continue
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		return vw.NewCredentialWithImportedKey(vw.KeyTypeEC2, der)
	}
}

// create answers navigator.credentials.create options.
func (a *authenticator) create(t *testing.T, opts any) *strings.Reader {
	t.Helper()
	raw, err := json.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	o, err := vw.ParseAttestationOptions(string(raw))
	if err != nil {
		t.Fatalf("ParseAttestationOptions: %v", err)
	}
	resp := vw.CreateAttestationResponse(a.rp, a.auth, a.cred, *o)
	a.auth.Options.UserHandle = []byte(o.UserID)
	return strings.NewReader(resp)
}

// get answers navigator.credentials.get options; it bumps the counter by
// step first, like a real authenticator (step 0 keeps it).
func (a *authenticator) get(t *testing.T, opts any, step uint32) string {
	t.Helper()
	raw, err := json.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	o, err := vw.ParseAssertionOptions(string(raw))
	if err != nil {
		t.Fatalf("ParseAssertionOptions: %v", err)
	}
	a.cred.Counter += step
	return vw.CreateAssertionResponse(a.rp, a.auth, a.cred, *o)
}

type waEnv struct {
	*env
	m   *Sessions
	w   *WebAuthn
	inv *Invites
}

// newWAEnv builds a WebAuthn with webauthn.enrollment set to enrollment;
// empty is config's default, resolved as config.Load does.
func newWAEnv(t *testing.T, enrollment string) *waEnv {
	t.Helper()
	c := config.Config{WebAuthn: config.WebAuthn{Enrollment: enrollment}}
	c.ApplyDefaults()
	enrollment = c.WebAuthn.Enrollment
	e := newEnv(t)
	m := e.sessions(t)
	users, err := NewUsers(e.d)
	if err != nil {
		t.Fatal(err)
	}
	inv, _ := NewInvites(e.d)
	w, err := NewWebAuthn(e.d, WebAuthnConfig{PublicURL: "https://gate.example.com", Enrollment: enrollment}, users, m, inv)
	if err != nil {
		t.Fatalf("NewWebAuthn: %v", err)
	}
	return &waEnv{env: e, m: m, w: w, inv: inv}
}

// login starts a fresh pending portal session, as after SSO.
func (e *waEnv) login(t *testing.T, email string) *Session {
	t.Helper()
	s, err := e.m.Start(e.ctx(), &Login{Email: email, At: e.clk.Now()}, portal)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// enrol registers a's credential for s and returns the full session.
func (e *waEnv) enrol(t *testing.T, s *Session, a *authenticator, invite string) *Session {
	t.Helper()
	opts, err := e.w.BeginRegistration(e.ctx(), s, invite)
	if err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}
	s, err = e.w.FinishRegistration(e.ctx(), s, "my key", a.create(t, opts))
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	return s
}

func (e *waEnv) assert(t *testing.T, s *Session, a *authenticator, step uint32) (*Session, error) {
	t.Helper()
	opts, err := e.w.BeginAssertion(e.ctx(), s)
	if err != nil {
		t.Fatalf("BeginAssertion: %v", err)
	}
	return e.w.FinishAssertion(e.ctx(), s, strings.NewReader(a.get(t, opts, step)))
}

func TestWebAuthnEnrolAndAssert(t *testing.T) {
	e := newWAEnv(t, "")
	ctx := e.ctx()
	key := newAuthenticator(vw.AuthenticatorOptions{})
	s := e.login(t, "ann@example.com")
	if has, _ := e.w.HasCredentials(ctx, "ann@example.com"); has {
		t.Fatal("HasCredentials before enrolment")
	}
	if _, err := e.w.BeginAssertion(ctx, s); !errors.Is(err, ErrNotFound) {
		t.Errorf("BeginAssertion without keys = %v, want ErrNotFound", err)
	}
	e.clk.Advance(time.Minute)
	s = e.enrol(t, s, key, "")
	if s.Pending() || !s.MFAAt.Equal(e.clk.Now()) {
		t.Errorf("session after enrolment: pending=%v MFAAt=%v", s.Pending(), s.MFAAt)
	}
	if got, err := e.m.Lookup(ctx, s.ID, portal); err != nil || got.Pending() {
		t.Errorf("stored session after enrolment = %+v, %v", got, err)
	}
	creds, _ := e.w.Credentials(ctx, "ann@example.com")
	if len(creds) != 1 || creds[0].Name != "my key" || !creds[0].UserVerified || !bytes.Equal(creds[0].ID, key.cred.ID) {
		t.Fatalf("Credentials = %+v", creds)
	}
	if len(e.audit.find(EventEnroll, "allow")) != 1 {
		t.Errorf("enrolment not audited")
	}

	// A later login asserts with the key.
	e.clk.Advance(time.Hour)
	s2 := e.login(t, "ann@example.com")
	s2, err := e.assert(t, s2, key, 1)
	if err != nil {
		t.Fatalf("FinishAssertion: %v", err)
	}
	if s2.Pending() || !s2.MFAAt.Equal(e.clk.Now()) {
		t.Errorf("session after assertion: %+v", s2)
	}
	creds, _ = e.w.Credentials(ctx, "ann@example.com")
	if creds[0].SignCount != 1 || !creds[0].LastUsed.Equal(e.clk.Now()) {
		t.Errorf("credential after assertion: count %d last used %v", creds[0].SignCount, creds[0].LastUsed)
	}
	if len(e.audit.find(EventAssert, "allow")) != 1 {
		t.Errorf("assertion not audited")
	}
}

func TestWebAuthnReplayAndBinding(t *testing.T) {
	e := newWAEnv(t, "")
	ctx := e.ctx()
	key := newAuthenticator(vw.AuthenticatorOptions{})
	e.enrol(t, e.login(t, "ann@example.com"), key, "")

	s := e.login(t, "ann@example.com")
	opts, err := e.w.BeginAssertion(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	resp := key.get(t, opts, 1)
	if s, err = e.w.FinishAssertion(ctx, s, strings.NewReader(resp)); err != nil {
		t.Fatalf("FinishAssertion: %v", err)
	}
	// The same response again: the ceremony is gone.
	if _, err := e.w.FinishAssertion(ctx, s, strings.NewReader(resp)); !errors.Is(err, ErrNotFound) {
		t.Errorf("replayed assertion = %v, want ErrNotFound", err)
	}
	// Replayed into a new ceremony: the challenge differs.
	if _, err := e.w.BeginAssertion(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := e.w.FinishAssertion(ctx, s, strings.NewReader(resp)); !errors.Is(err, ErrForbidden) {
		t.Errorf("assertion replayed into a new ceremony = %v, want ErrForbidden", err)
	}
	// A ceremony belongs to the session that started it.
	a := e.login(t, "ann@example.com")
	b := e.login(t, "ann@example.com")
	opts, _ = e.w.BeginAssertion(ctx, a)
	if _, err := e.w.FinishAssertion(ctx, b, strings.NewReader(key.get(t, opts, 1))); !errors.Is(err, ErrNotFound) {
		t.Errorf("assertion finished on another session = %v, want ErrNotFound", err)
	}
	// A registration ceremony cannot be finished as an assertion.
	if _, err := e.w.BeginRegistration(ctx, s, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.w.FinishAssertion(ctx, s, strings.NewReader(resp)); !errors.Is(err, ErrNotFound) {
		t.Errorf("assertion against a registration ceremony = %v, want ErrNotFound", err)
	}
	// App sessions cannot run ceremonies.
	code, _ := issueHandoff(e.m, ctx, s.ID, "app.example.com", "/")
	app, _, err := redeemHandoff(e.m, ctx, code, "app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.w.BeginAssertion(ctx, app); !errors.Is(err, ErrForbidden) {
		t.Errorf("BeginAssertion on an app session = %v, want ErrForbidden", err)
	}
	// Oversized and malformed bodies.
	opts, _ = e.w.BeginAssertion(ctx, s)
	_ = opts
	if _, err := e.w.FinishAssertion(ctx, s, strings.NewReader(strings.Repeat(" ", MaxResponseBytes+1))); !errors.Is(err, ErrForbidden) {
		t.Errorf("oversized assertion = %v, want ErrForbidden", err)
	}
	e.w.BeginAssertion(ctx, s)
	if _, err := e.w.FinishAssertion(ctx, s, strings.NewReader(`{"id":1}`)); !errors.Is(err, ErrForbidden) {
		t.Errorf("malformed assertion = %v, want ErrForbidden", err)
	}
	if len(e.audit.find(EventAssert, "deny")) < 4 {
		t.Errorf("failed assertions not audited: %+v", e.audit.find(EventAssert, ""))
	}
}

func TestWebAuthnUserVerificationRequired(t *testing.T) {
	e := newWAEnv(t, "")
	ctx := e.ctx()
	noUV := newAuthenticator(vw.AuthenticatorOptions{UserNotVerified: true})
	s := e.login(t, "ann@example.com")
	opts, err := e.w.BeginRegistration(ctx, s, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.w.FinishRegistration(ctx, s, "k", noUV.create(t, opts)); !errors.Is(err, ErrForbidden) {
		t.Errorf("registration without UV = %v, want ErrForbidden", err)
	}
	if has, _ := e.w.HasCredentials(ctx, "ann@example.com"); has {
		t.Errorf("a key enrolled without UV was stored")
	}
	key := newAuthenticator(vw.AuthenticatorOptions{})
	e.enrol(t, s, key, "")
	key.auth.Options.UserNotVerified = true
	if _, err := e.assert(t, e.login(t, "ann@example.com"), key, 1); !errors.Is(err, ErrForbidden) {
		t.Errorf("assertion without UV = %v, want ErrForbidden", err)
	}
}

func TestWebAuthnClonedKey(t *testing.T) {
	e := newWAEnv(t, "")
	key := newAuthenticator(vw.AuthenticatorOptions{})
	e.enrol(t, e.login(t, "ann@example.com"), key, "")
	if _, err := e.assert(t, e.login(t, "ann@example.com"), key, 5); err != nil {
		t.Fatalf("assertion with counter 5: %v", err)
	}
	clone := *key // a copy of the key, as a cloned authenticator would be
	for _, step := range []uint32{0} {
		s := e.login(t, "ann@example.com")
		if _, err := e.assert(t, s, &clone, step); !errors.Is(err, ErrClonedKey) {
			t.Errorf("assertion with a non-advancing counter = %v, want ErrClonedKey", err)
		}
		if got, _ := e.m.Lookup(e.ctx(), s.ID, portal); got == nil || !got.Pending() {
			t.Errorf("session upgraded despite cloned key")
		}
	}
	clone.cred.Counter = 3
	if _, err := e.assert(t, e.login(t, "ann@example.com"), &clone, 0); !errors.Is(err, ErrClonedKey) {
		t.Errorf("assertion with a lower counter = %v, want ErrClonedKey", err)
	}
	ev := e.audit.find(EventClonedKey, "deny")
	if len(ev) != 2 || ev[0].Actor != "ann@example.com" || ev[0].Details["stored_counter"] != "5" {
		t.Errorf("cloned-key audit = %+v", ev)
	}
	if _, err := e.assert(t, e.login(t, "ann@example.com"), key, 1); err != nil {
		t.Errorf("the real key (counter 6) after clone attempts: %v", err)
	}

	// Authenticators without counters (always 0) are fine.
	e2 := newWAEnv(t, "")
	passkey := newAuthenticator(vw.AuthenticatorOptions{})
	e2.enrol(t, e2.login(t, "bob@example.com"), passkey, "")
	for i := 0; i < 2; i++ {
		if _, err := e2.assert(t, e2.login(t, "bob@example.com"), passkey, 0); err != nil {
			t.Errorf("zero-counter assertion %d: %v", i, err)
		}
	}
}

func TestWebAuthnEnrolmentRules(t *testing.T) {
	e := newWAEnv(t, "")
	ctx := e.ctx()
	key1 := newAuthenticator(vw.AuthenticatorOptions{})
	key2 := newAuthenticator(vw.AuthenticatorOptions{})

	// First enrolment only right after SSO.
	late := e.login(t, "ann@example.com")
	e.clk.Advance(EnrollWindow + time.Second)
	if _, err := e.w.BeginRegistration(ctx, late, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("first enrolment 5m after SSO = %v, want ErrForbidden", err)
	}
	s := e.enrol(t, e.login(t, "ann@example.com"), key1, "")

	// Another key needs a fresh assertion.
	if _, err := e.w.BeginRegistration(ctx, e.login(t, "ann@example.com"), ""); !errors.Is(err, ErrMFARequired) {
		t.Errorf("second key from a pending session = %v, want ErrMFARequired", err)
	}
	e.clk.Advance(EnrollWindow + time.Second)
	if _, err := e.w.BeginRegistration(ctx, s, ""); !errors.Is(err, ErrMFARequired) {
		t.Errorf("second key with a stale assertion = %v, want ErrMFARequired", err)
	}
	s, err := e.assert(t, s, key1, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Excluding the existing key: the options list it.
	opts, err := e.w.BeginRegistration(ctx, s, "")
	if err != nil {
		t.Fatalf("second key after assertion: %v", err)
	}
	if n := len(opts.Response.CredentialExcludeList); n != 1 {
		t.Errorf("exclude list has %d entries, want 1", n)
	}
	// The same authenticator credential cannot be enrolled twice.
	if _, err := e.w.FinishRegistration(ctx, s, "again", key1.create(t, opts)); !errors.Is(err, ErrForbidden) {
		t.Errorf("enrolling the same credential twice = %v, want ErrForbidden", err)
	}
	opts, _ = e.w.BeginRegistration(ctx, s, "")
	key2.create(t, opts) // sets the user handle
	if s, err = e.w.FinishRegistration(ctx, s, "backup\x00\u202e key", key2.create(t, opts)); err != nil {
		t.Fatalf("second key: %v", err)
	}
	creds, _ := e.w.Credentials(ctx, "ann@example.com")
	if len(creds) != 2 || creds[1].Name != "backup key" {
		t.Fatalf("Credentials = %+v", creds)
	}

	// Removal: never the last key; needs a fresh assertion.
	if err := e.w.RemoveCredential(ctx, s, key2.cred.ID); err != nil {
		t.Fatalf("RemoveCredential: %v", err)
	}
	if err := e.w.RemoveCredential(ctx, s, key1.cred.ID); !errors.Is(err, ErrLastKey) {
		t.Errorf("removing the last key = %v, want ErrLastKey", err)
	}
	if has, _ := e.w.HasCredentials(ctx, "ann@example.com"); !has {
		t.Fatalf("last key was removed")
	}
	e.clk.Advance(EnrollWindow + time.Second)
	if err := e.w.RemoveCredential(ctx, s, key1.cred.ID); !errors.Is(err, ErrMFARequired) {
		t.Errorf("removal with a stale assertion = %v, want ErrMFARequired", err)
	}
	if err := e.w.RenameCredential(ctx, s, key1.cred.ID, "  primary  "); err != nil {
		t.Errorf("RenameCredential: %v", err)
	}
	if creds, _ := e.w.Credentials(ctx, "ann@example.com"); creds[0].Name != "primary" {
		t.Errorf("name after rename = %q", creds[0].Name)
	}
}

func TestWebAuthnWrongOrigin(t *testing.T) {
	e := newWAEnv(t, "")
	evil := newAuthenticator(vw.AuthenticatorOptions{})
	evil.rp.Origin = "https://gate.example.com.evil.example"
	s := e.login(t, "ann@example.com")
	opts, _ := e.w.BeginRegistration(e.ctx(), s, "")
	if _, err := e.w.FinishRegistration(e.ctx(), s, "k", evil.create(t, opts)); !errors.Is(err, ErrForbidden) {
		t.Errorf("registration from another origin = %v, want ErrForbidden", err)
	}
	other := newAuthenticator(vw.AuthenticatorOptions{})
	other.rp.ID = "example.com"
	opts, _ = e.w.BeginRegistration(e.ctx(), s, "")
	if _, err := e.w.FinishRegistration(e.ctx(), s, "k", other.create(t, opts)); !errors.Is(err, ErrForbidden) {
		t.Errorf("registration for another RP ID = %v, want ErrForbidden", err)
	}
}

func TestWebAuthnInviteEnrolment(t *testing.T) {
	e := newWAEnv(t, config.EnrollmentInvite)
	ctx := e.ctx()
	s := e.login(t, "ann@example.com")
	if _, err := e.w.BeginRegistration(ctx, s, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("invite mode without token = %v, want ErrForbidden", err)
	}
	bobs, err := e.inv.Create(ctx, "bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.w.BeginRegistration(ctx, s, bobs); !errors.Is(err, ErrForbidden) {
		t.Errorf("someone else's invite = %v, want ErrForbidden", err)
	}
	tok, _ := e.inv.Create(ctx, "Ann@example.com")
	e.enrol(t, s, newAuthenticator(vw.AuthenticatorOptions{}), tok)
	// Single use: another person's first enrolment... and the same person
	// cannot reuse it on a fresh account state.
	if err := e.inv.check(ctx, tok, "ann@example.com"); !errors.Is(err, ErrForbidden) {
		t.Errorf("invite after use = %v, want ErrForbidden", err)
	}
	// Expiry.
	tok2, _ := e.inv.Create(ctx, "carol@example.com")
	e.clk.Advance(InviteTTL)
	c := e.login(t, "carol@example.com")
	if _, err := e.w.BeginRegistration(ctx, c, tok2); !errors.Is(err, ErrForbidden) {
		t.Errorf("expired invite = %v, want ErrForbidden", err)
	}
	// Empty is refused, not read as "open": config resolves the default,
	// and whether strangers may enrol is never guessed here.
	for _, bad := range []string{"bogus", ""} {
		_, err := NewWebAuthn(e.d, WebAuthnConfig{PublicURL: "https://gate.example.com", Enrollment: bad}, &Users{d: e.d}, e.m, e.inv)
		if err == nil || !strings.Contains(err.Error(), "unknown enrollment") {
			t.Errorf("NewWebAuthn(enrollment %q) = %v, want unknown enrollment", bad, err)
		}
	}
	if _, err := NewWebAuthn(e.d, WebAuthnConfig{PublicURL: "http://gate.example.com", Enrollment: config.EnrollmentOpen}, &Users{d: e.d}, e.m, nil); err == nil {
		t.Errorf("NewWebAuthn accepted an http public_url")
	}
}
