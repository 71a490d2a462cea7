package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/portal"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/store"
)

// benchUser is the person whose session the benchmark uses.
var benchUser = identity.Login{Email: "bench@example.com", Subject: "bench", Groups: []string{"bench"}}

// nopAudit discards the minting's audit events: they happen before the
// server runs and are not part of what is measured.
type nopAudit struct{}

func (nopAudit) Log(context.Context, audit.Event) error { return nil }

// mintSession creates a real, fully authenticated session for benchUser in
// the store in dataDir, the way a browser would get one: an SSO login, a
// WebAuthn enrolment (a virtual authenticator answers the real ceremony),
// a handoff to the app host, and the app host's sealed cookie. It returns
// the cookie value. Gatehouse must not be running: the store file is
// locked by whoever opens it.
func mintSession(ctx context.Context, dataDir, publicURL, appHost string) (string, error) {
	st, err := store.OpenBolt(filepath.Join(dataDir, "state.db"))
	if err != nil {
		return "", fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	// The server that later serves this store opens the default master key.
	kr, err := benchKeyring(filepath.Join(dataDir, config.DefaultMasterKeyName))
	if err != nil {
		return "", err
	}
	d := identity.Deps{Store: st, Audit: nopAudit{}, Logger: slog.New(slog.DiscardHandler), Secrets: kr}
	sess, err := identity.NewSessions(d, identity.SessionOptions{})
	if err != nil {
		return "", err
	}
	users, err := identity.NewUsers(d)
	if err != nil {
		return "", err
	}
	invites, err := identity.NewInvites(d)
	if err != nil {
		return "", err
	}
	wa, err := identity.NewWebAuthn(d, identity.WebAuthnConfig{PublicURL: publicURL, Enrollment: config.EnrollmentOpen}, users, sess, invites)
	if err != nil {
		return "", err
	}
	codec, err := identity.NewCodec(ctx, d, 0)
	if err != nil {
		return "", err
	}
	pub, err := url.Parse(publicURL)
	if err != nil {
		return "", err
	}
	ctx = identity.WithClient(ctx, identity.Client{Source: "127.0.0.1", UserAgent: "gatehouse-bench"})
	login := benchUser
	login.At = time.Now()
	s, err := sess.Start(ctx, &login, pub.Hostname())
	if err != nil {
		return "", fmt.Errorf("start session: %w", err)
	}
	cc, err := wa.BeginRegistration(ctx, s, "")
	if err != nil {
		return "", fmt.Errorf("begin registration: %w", err)
	}
	ccJSON, err := json.Marshal(cc)
	if err != nil {
		return "", err
	}
	opts, err := virtualwebauthn.ParseAttestationOptions(string(ccJSON))
	if err != nil {
		return "", fmt.Errorf("parse creation options: %w", err)
	}
	rp := virtualwebauthn.RelyingParty{Name: "Gatehouse", ID: pub.Hostname(), Origin: pub.Scheme + "://" + pub.Host}
	authn := virtualwebauthn.NewAuthenticator()
	der, err := fullLengthP256Key()
	if err != nil {
		return "", err
	}
	cred := virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, der)
	resp := virtualwebauthn.CreateAttestationResponse(rp, authn, cred, *opts)
	if s, err = wa.FinishRegistration(ctx, s, "bench key", strings.NewReader(resp)); err != nil {
		return "", fmt.Errorf("finish registration: %w", err)
	}
	nonce, err := identity.NewHandoffNonce()
	if err != nil {
		return "", err
	}
	code, err := sess.IssueBoundHandoff(ctx, s.ID, appHost, "/", identity.HandoffBinding(nonce))
	if err != nil {
		return "", fmt.Errorf("handoff: %w", err)
	}
	app, _, err := sess.RedeemBoundHandoff(ctx, code, appHost, nonce)
	if err != nil {
		return "", fmt.Errorf("redeem handoff: %w", err)
	}
	v, err := codec.Seal(portal.SessionCookie, appHost, app.ID)
	if err != nil {
		return "", fmt.Errorf("seal cookie: %w", err)
	}
	return v, nil
}

// fullLengthP256Key returns a PKCS#8 P-256 key whose coordinates both take
// all 32 bytes. virtualwebauthn encodes x and y with big.Int.Bytes, which
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

// benchKeyring opens the master key at path, creating it first if absent,
// as serve does for the default key in data_dir.
func benchKeyring(path string) (*secrets.Keyring, error) {
	if _, err := secrets.CreateKeyFile(path); err != nil {
		return nil, err
	}
	return secrets.Open(path)
}
