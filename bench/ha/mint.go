package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/descope/virtualwebauthn"
	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/portal"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/store"
)

// benchGroup is the group every minted person is in; the route and the
// target allow it.
const benchGroup = "bench"

// nopAudit discards the minting's audit events: they happen before the
// load and are not part of what is measured.
type nopAudit struct{}

func (nopAudit) Log(context.Context, audit.Event) error { return nil }

// minter writes sessions and key bindings into the replicas' store (the
// same Redis, prefix and master key as the replicas' config), through
// identity's public API, as a browser sign-in and an SSH approval would.
type minter struct {
	st    *store.Redis
	deps  identity.Deps
	sess  *identity.Sessions
	wa    *identity.WebAuthn
	codec *identity.Codec
	keys  *identity.KeyBindings
	pub   *url.URL
}

// newMinter opens the store and keyring that cfg names.
func newMinter(ctx context.Context, cfg *config.Config) (*minter, error) {
	st, err := store.OpenRedis(store.RedisOptions{Addr: cfg.Redis.Addr, Prefix: cfg.Redis.Prefix})
	if err != nil {
		return nil, err
	}
	m := &minter{st: st}
	if err := m.init(ctx, cfg); err != nil {
		st.Close()
		return nil, err
	}
	return m, nil
}

func (m *minter) init(ctx context.Context, cfg *config.Config) error {
	kr, err := secrets.Open(cfg.Secrets.MasterKeyFile)
	if err != nil {
		return err
	}
	m.deps = identity.Deps{Store: m.st, Audit: nopAudit{}, Logger: slog.New(slog.DiscardHandler), Secrets: kr}
	if m.sess, err = identity.NewSessions(m.deps, identity.SessionOptions{}); err != nil {
		return err
	}
	users, err := identity.NewUsers(m.deps)
	if err != nil {
		return err
	}
	invites, err := identity.NewInvites(m.deps)
	if err != nil {
		return err
	}
	if m.wa, err = identity.NewWebAuthn(m.deps, identity.WebAuthnConfig{PublicURL: cfg.PublicURL, Enrollment: config.EnrollmentOpen}, users, m.sess, invites); err != nil {
		return err
	}
	if m.codec, err = identity.NewCodec(ctx, m.deps, 0); err != nil {
		return err
	}
	if m.keys, err = identity.NewKeyBindings(m.deps); err != nil {
		return err
	}
	m.pub, err = url.Parse(cfg.PublicURL)
	return err
}

func (m *minter) close() { m.st.Close() }

// portalSession signs email in (an SSO login) and enrols a security key
// (a virtual authenticator answers the real WebAuthn ceremony): the state
// a browser has after its first visit.
func (m *minter) portalSession(ctx context.Context, email string) (*identity.Session, error) {
	ctx = identity.WithClient(ctx, identity.Client{Source: "127.0.0.1", UserAgent: "gatehouse-bench-ha"})
	login := identity.Login{Email: email, Subject: email, Groups: []string{benchGroup}, At: time.Now()}
	s, err := m.sess.Start(ctx, &login, m.pub.Hostname())
	if err != nil {
		return nil, fmt.Errorf("start session: %w", err)
	}
	cc, err := m.wa.BeginRegistration(ctx, s, "")
	if err != nil {
		return nil, fmt.Errorf("begin registration: %w", err)
	}
	ccJSON, err := json.Marshal(cc)
	if err != nil {
		return nil, err
	}
	opts, err := virtualwebauthn.ParseAttestationOptions(string(ccJSON))
	if err != nil {
		return nil, fmt.Errorf("parse creation options: %w", err)
	}
	rp := virtualwebauthn.RelyingParty{Name: "Gatehouse", ID: m.pub.Hostname(), Origin: m.pub.Scheme + "://" + m.pub.Host}
	der, err := fullLengthP256Key()
	if err != nil {
		return nil, err
	}
	cred := virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, der)
	resp := virtualwebauthn.CreateAttestationResponse(rp, virtualwebauthn.NewAuthenticator(), cred, *opts)
	if s, err = m.wa.FinishRegistration(ctx, s, "bench key", strings.NewReader(resp)); err != nil {
		return nil, fmt.Errorf("finish registration: %w", err)
	}
	return s, nil
}

// appCookie hands the portal session to appHost (handoff and redeem, as
// the browser's redirect does) and returns the app host's sealed cookie
// as a Cookie header value. Each call is a new app session.
func (m *minter) appCookie(ctx context.Context, s *identity.Session, appHost string) (string, error) {
	nonce, err := identity.NewHandoffNonce()
	if err != nil {
		return "", err
	}
	code, err := m.sess.IssueBoundHandoff(ctx, s.ID, appHost, "/", identity.HandoffBinding(nonce))
	if err != nil {
		return "", fmt.Errorf("handoff: %w", err)
	}
	app, _, err := m.sess.RedeemBoundHandoff(ctx, code, appHost, nonce)
	if err != nil {
		return "", fmt.Errorf("redeem handoff: %w", err)
	}
	v, err := m.codec.Seal(portal.SessionCookie, appHost, app.ID)
	if err != nil {
		return "", fmt.Errorf("seal cookie: %w", err)
	}
	return portal.SessionCookie + "=" + v, nil
}

// sshKey makes a new client key and binds it to email, exactly as an
// approval in the browser would (MFA just done, the default max age).
func (m *minter) sshKey(ctx context.Context, email string) (gossh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	who := authz.Subject{Email: email, Groups: []string{benchGroup}, MFAAt: time.Now()}
	if err := m.keys.Bind(ctx, gossh.FingerprintSHA256(signer.PublicKey()), who, 11*time.Hour); err != nil {
		return nil, fmt.Errorf("bind key: %w", err)
	}
	return signer, nil
}

// fullLengthP256Key returns a PKCS#8 P-256 key whose coordinates both take
// all 32 bytes: virtualwebauthn encodes them with big.Int.Bytes, which
// drops leading zero bytes, so about one key in 128 would fail to verify.
func fullLengthP256Key() ([]byte, error) {
	for {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		if len(k.X.Bytes()) == 32 && len(k.Y.Bytes()) == 32 {
			return x509.MarshalPKCS8PrivateKey(k)
		}
	}
}
