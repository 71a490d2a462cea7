package identity

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/store"
)

// Cookie key ring timing and limits.
const (
	// CookieKeyRotation is how often a new cookie key is made.
	CookieKeyRotation = 24 * time.Hour
	// MaxCookieLen is the longest cookie value Open accepts.
	MaxCookieLen = 256
)

// Where the cookie key ring is kept: its store key, and the purpose it is
// sealed for under the master key (package secrets).
const (
	CookieKeysStoreKey = cookieRingKey
	CookieKeysPurpose  = "identity/cookie-keys"
)

const (
	cookieRingKey  = "identity/cookie-keys"
	cookieVersion  = 1
	cookieHdrLen   = 1 + 4 + 12 // version, key ID, nonce
	cookieMinLen   = cookieHdrLen + 8 + 16
	cookieSkew     = time.Minute     // tolerated clock skew between replicas
	cookieKeySlack = time.Hour       // how long replicas may still seal with a replaced key
	ringReloadMin  = time.Second     // Open reloads the ring for an unknown key at most this often
	ringOpTimeout  = 2 * time.Second // bounds a lazy store access
	maxSessionID   = 128
)

var errBadCookie = errors.New("identity: invalid cookie")

// cookieKey is one AES-256 key of the ring.
type cookieKey struct {
	ID      uint32    `json:"id"`
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
	aead    cipher.AEAD
}

// Codec seals session IDs into cookie values with AES-256-GCM. The cookie
// name and host are additional data, so a value sealed for one host or
// cookie is refused on another. Keys live in the store (shared by all
// replicas) and rotate every CookieKeyRotation; older keys are accepted for
// the session maximum lifetime. It is safe for concurrent use.
//
// A value is base64url(version | key ID | nonce | GCM(issued-at | ID)).
type Codec struct {
	d      Deps
	maxAge time.Duration

	mu       sync.RWMutex // guards keys, raw and lastTry
	keys     []cookieKey  // oldest first; the last one seals
	raw      []byte       // the ring as last read from the store
	lastTry  time.Time    // last reload attempt caused by an unknown key ID
	reloadMu sync.Mutex   // serialises Refresh
}

// NewCodec loads (or creates) the key ring. maxAge is the longest a cookie
// stays valid (use the session absolute lifetime); zero means
// DefaultSessionMaxAge.
func NewCodec(ctx context.Context, d Deps, maxAge time.Duration) (*Codec, error) {
	d, err := d.check()
	if err != nil {
		return nil, err
	}
	if d.Secrets == nil {
		return nil, errors.New("identity: cookie codec: Deps.Secrets is required (the key ring is kept sealed)")
	}
	if maxAge <= 0 {
		maxAge = DefaultSessionMaxAge
	}
	c := &Codec{d: d, maxAge: maxAge}
	if err := c.Refresh(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Seal returns the cookie value for sessionID on host under cookie name.
// It uses the newest key; when that key is older than CookieKeyRotation it
// first rotates (or picks up another replica's rotation) from the store.
func (c *Codec) Seal(name, host, sessionID string) (string, error) {
	if sessionID == "" || len(sessionID) > maxSessionID {
		return "", errors.New("identity: seal: bad session ID length")
	}
	now := c.d.Now()
	k, ok := c.current(now)
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), ringOpTimeout)
		err := c.Refresh(ctx)
		cancel()
		k, ok = c.current(now)
		if !ok {
			// Keep sealing with a key that is only a little overdue when the
			// store is briefly unavailable; refuse after that.
			c.mu.RLock()
			if n := len(c.keys); n > 0 && now.Sub(c.keys[n-1].Created) < CookieKeyRotation+cookieKeySlack {
				k, ok = c.keys[n-1], true
			}
			c.mu.RUnlock()
			if !ok {
				return "", fmt.Errorf("identity: seal: rotate cookie key: %w", err)
			}
		}
	}
	plain := make([]byte, 8, 8+len(sessionID))
	binary.BigEndian.PutUint64(plain, uint64(now.Unix()))
	plain = append(plain, sessionID...)
	out := make([]byte, cookieHdrLen, cookieHdrLen+len(plain)+16)
	out[0] = cookieVersion
	binary.BigEndian.PutUint32(out[1:5], k.ID)
	if _, err := rand.Read(out[5:cookieHdrLen]); err != nil {
		return "", err
	}
	out = k.aead.Seal(out, out[5:cookieHdrLen], plain, cookieAD(name, host, out[:5]))
	v := base64.RawURLEncoding.EncodeToString(out)
	if len(v) > MaxCookieLen {
		return "", errors.New("identity: seal: cookie too long")
	}
	return v, nil
}

// Open returns the session ID sealed in value, or an error if the value is
// malformed, forged, tampered, sealed for another name or host, sealed with
// a retired key, or older than the maximum age. It never panics. An unknown
// key ID makes it reload the ring from the store (at most once a second).
func (c *Codec) Open(name, host, value string) (string, error) {
	if len(value) > MaxCookieLen || len(value) < base64.RawURLEncoding.EncodedLen(cookieMinLen+1) {
		return "", errBadCookie
	}
	b, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(b) < cookieMinLen+1 || b[0] != cookieVersion {
		return "", errBadCookie
	}
	id := binary.BigEndian.Uint32(b[1:5])
	k, ok := c.byID(id)
	if !ok && c.mayReload() {
		ctx, cancel := context.WithTimeout(context.Background(), ringOpTimeout)
		_ = c.Refresh(ctx)
		cancel()
		k, ok = c.byID(id)
	}
	if !ok {
		return "", errBadCookie
	}
	plain, err := k.aead.Open(nil, b[5:cookieHdrLen], b[cookieHdrLen:], cookieAD(name, host, b[:5]))
	if err != nil || len(plain) < 9 {
		return "", errBadCookie
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(plain[:8])), 0)
	now := c.d.Now()
	if now.Sub(issued) > c.maxAge || issued.Sub(now) > cookieSkew {
		return "", fmt.Errorf("%w: expired", errBadCookie)
	}
	return string(plain[8:]), nil
}

// cookieAD is the additional data: a domain label, the header, and the
// length-prefixed cookie name and host, so neither can be confused.
func cookieAD(name, host string, hdr []byte) []byte {
	ad := make([]byte, 0, 32+len(name)+len(host))
	ad = append(ad, "gatehouse-cookie\x00"...)
	ad = append(ad, hdr...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(name)))
	ad = append(ad, name...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(host)))
	ad = append(ad, host...)
	return ad
}

// current returns the sealing key if it is not due for rotation.
func (c *Codec) current(now time.Time) (cookieKey, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if n := len(c.keys); n > 0 && now.Sub(c.keys[n-1].Created) < CookieKeyRotation {
		return c.keys[n-1], true
	}
	return cookieKey{}, false
}

// byID returns the ring's key with id.
func (c *Codec) byID(id uint32) (cookieKey, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, k := range c.keys {
		if k.ID == id {
			return k, true
		}
	}
	return cookieKey{}, false
}

// mayReload claims the right to reload the ring for an unknown key ID: at
// most one caller per ringReloadMin, whether or not that reload succeeds,
// so forged key IDs cannot turn every request into a store read.
func (c *Codec) mayReload() bool {
	now := c.d.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.lastTry) < ringReloadMin {
		return false
	}
	c.lastTry = now
	return true
}

// Refresh reloads the key ring from the store and rotates it when due. Seal
// and Open call it lazily; a server may also call it periodically.
func (c *Codec) Refresh(ctx context.Context) error {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	for attempt := 0; attempt < 5; attempt++ {
		raw, err := c.d.Store.Get(ctx, cookieRingKey)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("load cookie keys: %w", err)
		}
		if errors.Is(err, store.ErrNotFound) {
			raw = nil
		}
		plain, err := c.openRing(raw)
		if err != nil {
			return err
		}
		keys, err := parseRing(plain)
		if err != nil {
			return err
		}
		now := c.d.Now()
		if n := len(keys); n > 0 && now.Sub(keys[n-1].Created) < CookieKeyRotation {
			// A ring in plaintext (older release) or sealed with a previous
			// master key is sealed again with the current one.
			resealed, changed, err := c.d.Secrets.Reseal(CookieKeysPurpose, raw)
			if err != nil {
				return fmt.Errorf("seal cookie keys: %w", err)
			}
			if !changed {
				c.install(keys, raw)
				return nil
			}
			if swapped, err := c.d.Store.CompareAndSwap(ctx, cookieRingKey, raw, resealed, 0); err != nil {
				return fmt.Errorf("store cookie keys: %w", err)
			} else if swapped {
				c.d.Logger.InfoContext(ctx, "Sealed the cookie key ring with the current master key.")
				c.install(keys, resealed)
				return nil
			}
			continue // another replica changed the ring: reread it
		}
		next, err := c.rotate(keys, now)
		if err != nil {
			return err
		}
		nextPlain, err := json.Marshal(struct {
			Keys []cookieKey `json:"keys"`
		}{next})
		if err != nil {
			return err
		}
		nextRaw, err := c.d.Secrets.Seal(CookieKeysPurpose, nextPlain)
		if err != nil {
			return fmt.Errorf("seal cookie keys: %w", err)
		}
		swapped, err := c.d.Store.CompareAndSwap(ctx, cookieRingKey, raw, nextRaw, 0)
		if err != nil {
			return fmt.Errorf("store cookie keys: %w", err)
		}
		if swapped {
			parsed, err := parseRing(nextPlain)
			if err != nil {
				return err
			}
			c.d.Logger.InfoContext(ctx, "Rotated cookie key.", "key_id", next[len(next)-1].ID, "keys", len(next))
			c.install(parsed, nextRaw)
			return nil
		}
		// Another replica rotated first: load its ring.
	}
	return errors.New("identity: cookie key ring kept changing")
}

// rotate returns keys plus a new key, without the keys no live cookie can
// still use.
func (c *Codec) rotate(keys []cookieKey, now time.Time) ([]cookieKey, error) {
	var kept []cookieKey
	for i, k := range keys {
		// Key i sealed until key i+1 appeared (plus the slack other replicas
		// need to notice); its cookies live maxAge after that.
		var retired time.Time
		if i+1 < len(keys) {
			retired = keys[i+1].Created
		} else {
			retired = now
		}
		if now.Sub(retired) < c.maxAge+cookieKeySlack+cookieSkew {
			kept = append(kept, k)
		}
	}
	nk := cookieKey{Key: make([]byte, 32), Created: now}
	if _, err := rand.Read(nk.Key); err != nil {
		return nil, err
	}
	var idb [4]byte
	for {
		if _, err := rand.Read(idb[:]); err != nil {
			return nil, err
		}
		nk.ID = binary.BigEndian.Uint32(idb[:])
		dup := false
		for _, k := range kept {
			dup = dup || k.ID == nk.ID
		}
		if !dup {
			break
		}
	}
	return append(kept, nk), nil
}

// openRing returns the stored ring's plaintext: raw opened under the master
// keyring, or raw itself when an older release stored it unsealed (Refresh
// then seals it). A sealed ring that does not open is an error, never an
// empty ring: other replicas may be using it.
func (c *Codec) openRing(raw []byte) ([]byte, error) {
	if raw == nil || !secrets.IsSealed(raw) {
		return raw, nil
	}
	plain, err := c.d.Secrets.Open(CookieKeysPurpose, raw)
	if err != nil {
		return nil, fmt.Errorf("open cookie keys: %w", err)
	}
	return plain, nil
}

// install replaces the in-memory ring.
func (c *Codec) install(keys []cookieKey, raw []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !bytes.Equal(raw, c.raw) {
		c.keys, c.raw = keys, raw
	}
}

// parseRing decodes the stored ring and prepares each key's AEAD.
func parseRing(raw []byte) ([]cookieKey, error) {
	if raw == nil {
		return nil, nil
	}
	var ring struct {
		Keys []cookieKey `json:"keys"`
	}
	if err := json.Unmarshal(raw, &ring); err != nil {
		return nil, fmt.Errorf("decode cookie keys: %w", err)
	}
	for i := range ring.Keys {
		if len(ring.Keys[i].Key) != 32 {
			return nil, fmt.Errorf("decode cookie keys: key %d has %d bytes", ring.Keys[i].ID, len(ring.Keys[i].Key))
		}
		blk, err := aes.NewCipher(ring.Keys[i].Key)
		if err != nil {
			return nil, err
		}
		if ring.Keys[i].aead, err = cipher.NewGCM(blk); err != nil {
			return nil, err
		}
	}
	return ring.Keys, nil
}
