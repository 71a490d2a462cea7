package proxy

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSignedPersisted(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	hosts := []string{"gate.test", "app.test", "localhost"}
	first, created, err := loadOrCreateSelfSigned(dir, hosts, now)
	if err != nil || !created {
		t.Fatalf("first loadOrCreateSelfSigned = created %v, err %v; want created", created, err)
	}
	keyInfo, err := os.Stat(filepath.Join(dir, selfSignedDir, selfSignedKeyName))
	if err != nil {
		t.Fatal(err)
	}
	if perm := keyInfo.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", perm)
	}
	for _, h := range hosts {
		if err := first.Leaf.VerifyHostname(h); err != nil {
			t.Errorf("certificate does not name %s: %v", h, err)
		}
	}

	tests := []struct {
		name        string
		hosts       []string
		now         time.Time
		wantCreated bool
	}{
		{"restart", hosts, now.Add(time.Hour), false},
		{"subset of hosts", hosts[:1], now.Add(time.Hour), false},
		{"new host", append([]string{"new.test"}, hosts...), now.Add(time.Hour), true},
		{"near expiry", hosts, now.Add(selfSignedValidity - selfSignedMargin/2), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := t.TempDir()
			for _, name := range []string{selfSignedCertName, selfSignedKeyName} {
				b, err := os.ReadFile(filepath.Join(dir, selfSignedDir, name))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Join(sub, selfSignedDir), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(sub, selfSignedDir, name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, created, err := loadOrCreateSelfSigned(sub, tt.hosts, tt.now)
			if err != nil {
				t.Fatalf("loadOrCreateSelfSigned: %v", err)
			}
			if created != tt.wantCreated {
				t.Errorf("created = %v, want %v", created, tt.wantCreated)
			}
			same := bytes.Equal(got.Leaf.Raw, first.Leaf.Raw)
			if same == tt.wantCreated {
				t.Errorf("same certificate = %v, want %v", same, !tt.wantCreated)
			}
			for _, h := range tt.hosts {
				if err := got.Leaf.VerifyHostname(h); err != nil {
					t.Errorf("certificate does not name %s", h)
				}
			}
		})
	}
}

// TestSelfSignedStableAcrossRestarts runs two fronts one after the other on
// the same data directory and compares the certificates they serve.
func TestSelfSignedStableAcrossRestarts(t *testing.T) {
	cfg := frontTestConfig(t)
	var served [][]byte
	for i := range 2 {
		f, err := NewFront(FrontConfig{Config: cfg, Logger: frontTestLogger(t)})
		if err != nil {
			t.Fatalf("NewFront #%d: %v", i, err)
		}
		c, err := f.certs.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		served = append(served, c.Leaf.Raw)
		if err := f.Shutdown(t.Context()); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	}
	if !bytes.Equal(served[0], served[1]) {
		t.Errorf("self-signed certificate changed across restarts")
	}
}

func TestSelfSignedCorruptRefused(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := loadOrCreateSelfSigned(dir, []string{"gate.test"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, selfSignedDir, selfSignedKeyName)
	if err := os.WriteFile(key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateSelfSigned(dir, []string{"gate.test"}, time.Now()); err == nil {
		t.Errorf("loadOrCreateSelfSigned with a corrupt key succeeded; want an error, not a silent new key")
	}
}
