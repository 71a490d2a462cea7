package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func randKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	kr, err := New(randKey(t))
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("-----BEGIN OPENSSH PRIVATE KEY-----")
	s1, err := kr.Seal("sshgw/user_ca", plain)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := kr.Seal("sshgw/user_ca", plain)
	if bytes.Equal(s1, s2) {
		t.Error("two seals of the same plaintext are equal: nonce reused")
	}
	if bytes.Contains(s1, plain) || bytes.Contains(s1, []byte("PRIVATE KEY")) {
		t.Error("sealed value contains the plaintext")
	}
	got, err := kr.Open("sshgw/user_ca", s1)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if !IsSealed(s1) || IsSealed(plain) || IsSealed([]byte(`{"keys":[]}`)) {
		t.Error("IsSealed misjudges")
	}
}

func TestOpenRefusesWrongPurposeTamperAndJunk(t *testing.T) {
	kr, _ := New(randKey(t))
	s, err := kr.Seal("sshgw/host_ca", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open("identity/cookie-keys", s); !errors.Is(err, ErrOpen) {
		t.Errorf("wrong purpose: %v, want ErrOpen", err)
	}
	for i := range s {
		b := bytes.Clone(s)
		b[i] ^= 0x01
		if _, err := kr.Open("sshgw/host_ca", b); err == nil {
			t.Fatalf("flipped byte %d: opened", i)
		}
	}
	for _, junk := range [][]byte{nil, []byte("GHS"), []byte("GHS\x01"), s[:len(s)-1], s[:sealedMin-1]} {
		if _, err := kr.Open("sshgw/host_ca", junk); err == nil {
			t.Errorf("junk %q opened", junk)
		}
	}
	other, _ := New(randKey(t))
	if _, err := other.Open("sshgw/host_ca", s); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("other key: %v, want ErrUnknownKey", err)
	}
	if _, err := kr.Seal("", []byte("x")); err == nil {
		t.Error("empty purpose accepted")
	}
}

func TestRotation(t *testing.T) {
	oldK, newK := randKey(t), randKey(t)
	oldRing, _ := New(oldK)
	s, _ := oldRing.Seal("p", []byte("v"))
	// The new key first, the old one kept: old values still open.
	both, err := New(newK, oldK)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := both.Open("p", s); err != nil || string(got) != "v" {
		t.Fatalf("old value under rotated ring: %q, %v", got, err)
	}
	if both.Current(s) {
		t.Error("old value reported current")
	}
	re, changed, err := both.Reseal("p", s)
	if err != nil || !changed || !both.Current(re) {
		t.Fatalf("Reseal: changed=%v current=%v err=%v", changed, both.Current(re), err)
	}
	if again, changed, _ := both.Reseal("p", re); changed || !bytes.Equal(again, re) {
		t.Error("Reseal rewrote a current value")
	}
	// Plaintext from before sealing is sealed by Reseal.
	if p, changed, err := both.Reseal("p", []byte(`{"keys":[]}`)); err != nil || !changed || !IsSealed(p) {
		t.Errorf("Reseal of plaintext: %v %v", changed, err)
	}
	// After dropping the old key the resealed value opens, the old does not.
	newOnly, _ := New(newK)
	if got, err := newOnly.Open("p", re); err != nil || string(got) != "v" {
		t.Errorf("resealed under new key alone: %q, %v", got, err)
	}
	if _, err := newOnly.Open("p", s); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("old value after dropping old key: %v", err)
	}
	if _, err := New(newK, newK); err == nil {
		t.Error("duplicate key accepted")
	}
	if _, err := New(newK[:16]); err == nil {
		t.Error("short key accepted")
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "master.key")
	var wg sync.WaitGroup
	created := make([]bool, 8)
	for i := range created {
		wg.Go(func() {
			c, err := CreateKeyFile(p)
			if err != nil {
				t.Error(err)
			}
			created[i] = c
		})
	}
	wg.Wait()
	n := 0
	for _, c := range created {
		if c {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d creators reported creating the key, want 1", n)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 1 {
		t.Errorf("%d files beside the key, want none (temporary files left?)", len(ents)-1)
	}
	kr, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := ReadKeyFile(p)
	want, _ := New(raw)
	s, _ := want.Seal("p", []byte("v"))
	if _, err := kr.Open("p", s); err != nil {
		t.Errorf("key file does not hold the key it reads back: %v", err)
	}

	write := func(name, content string, mode os.FileMode) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return f
	}
	good := base64.StdEncoding.EncodeToString(randKey(t))
	for name, tc := range map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"open":  {good, 0o640, "too open"},
		"short": {base64.StdEncoding.EncodeToString(randKey(t)[:31]), 0o600, "base64 of 32"},
		"hex":   {strings.Repeat("ab", 32), 0o600, "base64 of 32"},
		"empty": {"", 0o600, "base64 of 32"},
	} {
		if _, err := Open(write(name, tc.content, tc.mode)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if _, err := Open(write("nl", good+"\n", 0o600)); err != nil {
		t.Errorf("trailing newline refused: %v", err)
	}
	if _, err := Open(p, filepath.Join(dir, "missing")); err == nil {
		t.Error("missing previous key accepted")
	}
}
