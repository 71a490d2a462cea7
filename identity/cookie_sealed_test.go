package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
)

// storedRing opens the ring in e's store with kr and returns its keys.
func storedRing(t *testing.T, e *env, kr *secrets.Keyring) ([]byte, []cookieKey) {
	t.Helper()
	raw, err := e.st.Get(e.ctx(), cookieRingKey)
	if err != nil {
		t.Fatal(err)
	}
	if !secrets.IsSealed(raw) {
		t.Fatalf("stored cookie ring is not sealed: %.40q", raw)
	}
	plain, err := kr.Open(CookieKeysPurpose, raw)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := parseRing(plain)
	if err != nil {
		t.Fatal(err)
	}
	return raw, keys
}

func TestCookieRingSealedAtRest(t *testing.T) {
	e := newEnv(t)
	c, err := NewCodec(e.ctx(), e.d, 72*time.Hour) // outlives a rotation
	if err != nil {
		t.Fatal(err)
	}
	raw, keys := storedRing(t, e, e.d.Secrets)
	if len(keys) != 1 || bytes.Contains(raw, keys[0].Key) || bytes.Contains(raw, []byte(`"key"`)) {
		t.Errorf("stored ring reveals its key (%d keys)", len(keys))
	}
	v, err := c.Seal("gh", "h", "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	// The ring rotates sealed too.
	e.clk.Advance(CookieKeyRotation + time.Minute)
	if _, err := c.Seal("gh", "h", "sess-2"); err != nil {
		t.Fatal(err)
	}
	if _, keys := storedRing(t, e, e.d.Secrets); len(keys) != 2 {
		t.Errorf("rotated ring has %d keys, want 2", len(keys))
	}
	if got, err := c.Open("gh", "h", v); err != nil || got != "sess-1" {
		t.Errorf("cookie from before the rotation: %q, %v", got, err)
	}
	// Another master key cannot read the ring: fail, never start afresh.
	d := e.d
	d.Secrets = secretstest.New(t)
	if _, err := NewCodec(e.ctx(), d, 0); err == nil || !strings.Contains(err.Error(), "open cookie keys") {
		t.Errorf("NewCodec under another master key = %v", err)
	}
	d.Secrets = nil
	if _, err := NewCodec(e.ctx(), d, 0); err == nil {
		t.Error("NewCodec without a keyring succeeded")
	}
}

func TestCookieRingPlaintextMigratedAndResealed(t *testing.T) {
	e := newEnv(t)
	// A ring as an older release stored it: plain JSON.
	key := make([]byte, 32)
	rand.Read(key)
	legacy, _ := json.Marshal(map[string]any{"keys": []cookieKey{{ID: 7, Key: key, Created: e.clk.Now()}}})
	if err := e.st.Set(e.ctx(), cookieRingKey, legacy, 0); err != nil {
		t.Fatal(err)
	}
	oldRaw, newRaw := randBytes(t), randBytes(t)
	oldKR, _ := secrets.New(oldRaw)
	d := e.d
	d.Secrets = oldKR
	c, err := NewCodec(e.ctx(), d, 0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Seal("gh", "h", "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	raw, keys := storedRing(t, e, oldKR)
	if len(keys) != 1 || keys[0].ID != 7 || !bytes.Equal(keys[0].Key, key) || bytes.Contains(raw, key) {
		t.Fatalf("migrated ring: %d keys, first ID %d", len(keys), keys[0].ID)
	}
	// Master key rotation: the new key first, the old kept; loading reseals.
	d.Secrets, _ = secrets.New(newRaw, oldRaw)
	c2, err := NewCodec(e.ctx(), d, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c2.Open("gh", "h", v); err != nil || got != "sess-1" {
		t.Errorf("cookie under the rotated master key: %q, %v", got, err)
	}
	newOnly, _ := secrets.New(newRaw) // the old master key dropped
	if _, keys := storedRing(t, e, newOnly); len(keys) != 1 || keys[0].ID != 7 {
		t.Errorf("ring after reseal: %+v", keys)
	}
}

func randBytes(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, secrets.KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
