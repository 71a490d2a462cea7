package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/assertion"
	"github.com/gatehouse-dev/gatehouse/assertion/assertiontest"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
	"github.com/gatehouse-dev/gatehouse/store"
)

// upTestLogger sends logs to t.Log.
func upTestLogger(t testing.TB) *slog.Logger { return frontTestLogger(t) }

// upBolt opens an embedded store in a temporary directory.
func upBolt(t testing.TB) *store.Bolt {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// upSigner is an assertion signer over st.
func upSigner(t testing.TB, st assertion.KeyStore, now func() time.Time) *assertion.Signer {
	t.Helper()
	a, err := assertion.NewSigner(context.Background(), assertion.Config{
		Store: st, Secrets: secretstest.Shared(t), Issuer: assertiontest.Issuer + "/", Logger: upTestLogger(t), Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// upFetchJWKS fetches and decodes the JWKS a handler serves.
func upFetchJWKS(t testing.TB, h http.Handler) (jose.JSONWebKeySet, http.Header, []byte) {
	t.Helper()
	return assertiontest.FetchJWKS(t, h, assertion.JWKSPath)
}

// upVerify verifies token against set the way an upstream would.
func upVerify(t testing.TB, token string, set jose.JSONWebKeySet, aud string, at time.Time) (assertion.Claims, error) {
	t.Helper()
	var c assertion.Claims
	err := assertiontest.Verify(token, set, aud, at, &c)
	return c, err
}
