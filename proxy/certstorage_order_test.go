package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// countingIssuer signs every CSR with a throwaway CA and counts the orders.
// Its first order waits until another replica has been refused the lock,
// so the test proves the two really contended.
type countingIssuer struct {
	orders    atomic.Int32
	contended <-chan struct{}
	ca        *x509.Certificate
	key       *ecdsa.PrivateKey
}

func newCountingIssuer(t *testing.T, contended <-chan struct{}) *countingIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &countingIssuer{contended: contended, ca: ca, key: key}
}

func (i *countingIssuer) IssuerKey() string { return "test-ca" }

func (i *countingIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	if i.orders.Add(1) == 1 {
		select {
		case <-i.contended:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(i.orders.Load()) + 1), DNSNames: csr.DNSNames,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, i.ca, csr.PublicKey, i.key)
	if err != nil {
		return nil, err
	}
	return &certmagic.IssuedCertificate{Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// lockSpy reports the first refused SetNX of a lock key.
type lockSpy struct {
	*memKV
	once    sync.Once
	refused chan struct{}
}

func (s *lockSpy) SetNX(ctx context.Context, key string, v []byte, ttl time.Duration) (bool, error) {
	ok, err := s.memKV.SetNX(ctx, key, v, ttl)
	if err == nil && !ok && strings.HasPrefix(key, certLockPrefix) {
		s.once.Do(func() { close(s.refused) })
	}
	return ok, err
}

// TestCertStorageOneOrder runs certmagic on two "replicas" sharing one store
// and asks both for the same certificate at once: one places the order, the
// other waits for the lock, then finds the certificate in storage.
func TestCertStorageOneOrder(t *testing.T) {
	kv := &lockSpy{memKV: newMemKV(), refused: make(chan struct{})}
	iss := newCountingIssuer(t, kv.refused)
	replica := func() *certmagic.Config {
		var magic *certmagic.Config
		cache := certmagic.NewCache(certmagic.CacheOptions{
			GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
			Logger:           zap.NewNop(),
		})
		t.Cleanup(cache.Stop)
		magic = certmagic.New(cache, certmagic.Config{
			Storage: NewCertStorage(kv, CertStorageOptions{PollInterval: 10 * time.Millisecond}),
			Issuers: []certmagic.Issuer{iss},
			Logger:  zap.NewNop(),
		})
		return magic
	}
	a, b := replica(), replica()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for name, c := range map[string]*certmagic.Config{"a": a, "b": b} {
		wg.Go(func() {
			if err := c.ObtainCertSync(ctx, "app.example.com"); err != nil {
				t.Errorf("replica %s: ObtainCertSync = %v", name, err)
			}
		})
	}
	wg.Wait()
	if n := iss.orders.Load(); n != 1 {
		t.Errorf("orders placed = %d, want 1", n)
	}
	keys, err := kv.Keys(ctx, certLockPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		// Unlock leaves "released" for a millisecond, then nothing.
		if v, err := kv.Get(ctx, k); err == nil && string(v) != "released" {
			t.Errorf("lock %s still held (%q) after both obtained", k, v)
		}
	}
}
