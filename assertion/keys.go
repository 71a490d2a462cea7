package assertion

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/go-jose/go-jose/v4"
)

// Assertion key timing. Every replica shares one key ring in the store.
const (
	// KeysStoreKey is the store key holding the signing key ring.
	// The value keeps its old name so that existing rings stay in use.
	KeysStoreKey = "proxy/jwt-keys"
	// KeysPurpose is what the ring is sealed for under the master key
	// (package secrets), so no other sealed value can stand in for it.
	KeysPurpose = "assertion/jwt-keys"
	// KeyRotation is how long a key is used for signing.
	KeyRotation = 24 * time.Hour
	// KeyRetention is how long a superseded key stays in the JWKS,
	// so that upstreams holding a cached JWKS keep verifying.
	KeyRetention = 48 * time.Hour
	// assertionKeyLead is how long a new key is published in the JWKS
	// before any replica signs with it, so that every replica (refreshing
	// every assertionRefresh) and every upstream (caching the JWKS for
	// jwksMaxAge) knows it first.
	assertionKeyLead = time.Hour
	// assertionRefresh is how often a replica rereads the ring.
	assertionRefresh = time.Minute
	// jwksMaxAge is the Cache-Control max-age of the JWKS, in seconds.
	jwksMaxAge = 300
	// maxRingSize bounds the stored ring; a larger value is refused.
	maxRingSize = 64 << 10
)

// KeyStore is the subset of store.Store the signer uses. It must be safe
// for concurrent use; every replica must share it.
type KeyStore interface {
	Get(ctx context.Context, key string) ([]byte, error)
	CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error)
}

var _ KeyStore = store.Store(nil)

// storedKey is one signing key as kept in the store (oldest first).
type storedKey struct {
	KID     string    `json:"kid"`
	Created time.Time `json:"created"`
	PKCS8   []byte    `json:"pkcs8"`
}

type storedRing struct {
	Keys []storedKey `json:"keys"`
}

// keyRing is the in-memory view of the stored ring. It is immutable once
// built; refresh replaces it as a whole.
type keyRing struct {
	signKID string
	signer  jose.Signer
	jwks    []byte // public keys only
	loaded  time.Time
}

// newSigningKey makes a P-256 key and its RFC 7638 thumbprint key ID.
func newSigningKey(now time.Time) (storedKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return storedKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storedKey{}, fmt.Errorf("marshal signing key: %w", err)
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return storedKey{}, err
	}
	return storedKey{KID: kid, Created: now.UTC().Truncate(time.Second), PKCS8: der}, nil
}

func thumbprint(pub *ecdsa.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// loadOrRotate reads the ring from the store, creates the first key or the
// next one when due, drops keys past their retention, writes any change
// back with compare-and-swap (so concurrent replicas agree on one ring),
// and returns the in-memory ring.
// The ring is stored sealed under kr; a plaintext ring (older releases) or
// one sealed with a previous master key is sealed again with the current
// one.
func loadOrRotate(ctx context.Context, st KeyStore, kr *secrets.Keyring, now time.Time) (*keyRing, error) {
	for range 5 {
		raw, err := st.Get(ctx, KeysStoreKey)
		if errors.Is(err, store.ErrNotFound) {
			raw = nil
		} else if err != nil {
			return nil, fmt.Errorf("read signing keys: %w", err)
		}
		var ring storedRing
		if raw != nil {
			if len(raw) > maxRingSize {
				return nil, errors.New("read signing keys: stored ring too large")
			}
			plain, err := openRing(kr, raw)
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(plain, &ring); err != nil {
				// Never overwrite a ring we cannot read: other replicas may
				// be signing with it.
				return nil, fmt.Errorf("read signing keys: %w", err)
			}
		}
		next, changed, err := rotate(ring, now)
		if err != nil {
			return nil, err
		}
		var sealed []byte
		if changed {
			b, err := json.Marshal(next)
			if err != nil {
				return nil, fmt.Errorf("encode signing keys: %w", err)
			}
			if sealed, err = kr.Seal(KeysPurpose, b); err != nil {
				return nil, fmt.Errorf("seal signing keys: %w", err)
			}
		} else if raw != nil {
			if sealed, changed, err = kr.Reseal(KeysPurpose, raw); err != nil {
				return nil, fmt.Errorf("seal signing keys: %w", err)
			}
		}
		if changed {
			ok, err := st.CompareAndSwap(ctx, KeysStoreKey, raw, sealed, 0)
			if err != nil {
				return nil, fmt.Errorf("write signing keys: %w", err)
			}
			if !ok {
				continue // another replica changed the ring: reread it
			}
		}
		return buildRing(next, now)
	}
	return nil, errors.New("write signing keys: too much contention")
}

// openRing returns the stored ring's JSON: raw opened under kr, or raw
// itself when an older release stored it unsealed. A sealed ring that does
// not open is an error, never replaced: other replicas may sign with it.
func openRing(kr *secrets.Keyring, raw []byte) ([]byte, error) {
	if !secrets.IsSealed(raw) {
		return raw, nil
	}
	plain, err := kr.Open(KeysPurpose, raw)
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	return plain, nil
}

// rotate returns ring with expired keys dropped and a new key appended when
// the newest is due for replacement, and whether anything changed.
func rotate(ring storedRing, now time.Time) (storedRing, bool, error) {
	var out storedRing
	changed := false
	for i, k := range ring.Keys {
		if i+1 < len(ring.Keys) && now.Sub(ring.Keys[i+1].Created) > KeyRetention+assertionKeyLead {
			changed = true // superseded long enough ago
			continue
		}
		out.Keys = append(out.Keys, k)
	}
	if n := len(out.Keys); n == 0 || now.Sub(out.Keys[n-1].Created) >= KeyRotation-assertionKeyLead {
		k, err := newSigningKey(now)
		if err != nil {
			return storedRing{}, false, err
		}
		out.Keys = append(out.Keys, k)
		changed = true
	}
	return out, changed, nil
}

// buildRing parses the stored keys, picks the signing key (the newest one
// published for at least assertionKeyLead, or the oldest key when none is
// yet) and renders the public JWKS.
func buildRing(ring storedRing, now time.Time) (*keyRing, error) {
	if len(ring.Keys) == 0 {
		return nil, errors.New("signing key ring is empty")
	}
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(ring.Keys))}
	var signKey *ecdsa.PrivateKey
	signKID := ""
	for i, k := range ring.Keys {
		parsed, err := x509.ParsePKCS8PrivateKey(k.PKCS8)
		if err != nil {
			return nil, fmt.Errorf("parse signing key %s: %w", k.KID, err)
		}
		priv, ok := parsed.(*ecdsa.PrivateKey)
		if !ok || priv.Curve != elliptic.P256() {
			return nil, fmt.Errorf("signing key %s is not ECDSA P-256", k.KID)
		}
		kid, err := thumbprint(&priv.PublicKey)
		if err != nil || kid != k.KID {
			return nil, fmt.Errorf("signing key %s: key ID does not match its thumbprint", k.KID)
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &priv.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"})
		if i == 0 || now.Sub(k.Created) >= assertionKeyLead {
			signKey, signKID = priv, kid
		}
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: signKey, KeyID: signKID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("encode jwks: %w", err)
	}
	return &keyRing{signKID: signKID, signer: signer, jwks: jwks, loaded: now}, nil
}
