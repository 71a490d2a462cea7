package assertion

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/assertion/assertiontest"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
)

func TestAssertionRingSealedMigratedAndResealed(t *testing.T) {
	now := time.Now()
	// A ring as an older release stored it: plain JSON with PKCS#8 keys.
	k, err := newSigningKey(now.Add(-2 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	legacy, _ := json.Marshal(storedRing{Keys: []storedKey{k}})
	st := &assertiontest.FlakyStore{Val: legacy}
	oldRaw, newRaw := bytes.Repeat([]byte{1}, secrets.KeySize), bytes.Repeat([]byte{2}, secrets.KeySize)
	oldKR, _ := secrets.New(oldRaw)
	a, err := NewSigner(context.Background(), Config{Store: st, Secrets: oldKR, Issuer: "https://g", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if a.ring.Load().signKID != k.KID {
		t.Errorf("migration changed the signing key: %s, want %s", a.ring.Load().signKID, k.KID)
	}
	if !secrets.IsSealed(st.Val) || bytes.Contains(st.Val, k.PKCS8) || bytes.Contains(st.Val, []byte("pkcs8")) {
		t.Fatalf("stored ring is not sealed: %.60q", st.Val)
	}
	// Another master key cannot read it, and does not replace it.
	before := bytes.Clone(st.Val)
	if _, err := NewSigner(context.Background(), Config{Store: st, Secrets: secretstest.New(t), Issuer: "https://g"}); err == nil {
		t.Error("ring opened under another master key")
	}
	if !bytes.Equal(st.Val, before) {
		t.Error("unreadable ring overwritten")
	}
	// Master key rotation: the new key first, the old kept; loading reseals.
	both, _ := secrets.New(newRaw, oldRaw)
	if _, err := NewSigner(context.Background(), Config{Store: st, Secrets: both, Issuer: "https://g", Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	newOnly, _ := secrets.New(newRaw) // the old master key dropped
	plain, err := newOnly.Open(KeysPurpose, st.Val)
	if err != nil {
		t.Fatalf("ring not resealed with the new master key: %v", err)
	}
	var ring storedRing
	if err := json.Unmarshal(plain, &ring); err != nil || len(ring.Keys) != 1 || ring.Keys[0].KID != k.KID {
		t.Errorf("resealed ring %+v, %v", ring, err)
	}
}
