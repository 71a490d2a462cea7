package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Self-signed certificates (tls.mode self_signed, demo only) live in
// DATA_DIR/tls so that their fingerprint survives restarts.
const (
	selfSignedDir      = "tls"
	selfSignedCertName = "self-signed.crt"
	selfSignedKeyName  = "self-signed.key"
	selfSignedValidity = 365 * 24 * time.Hour
	// selfSignedMargin: a stored certificate closer than this to expiry is
	// replaced at start.
	selfSignedMargin = 30 * 24 * time.Hour
)

// loadOrCreateSelfSigned returns the stored self-signed certificate if it
// names every host and is not near expiry, and otherwise makes, stores and
// returns a new ECDSA P-256 one. created reports which happened.
func loadOrCreateSelfSigned(dataDir string, hosts []string, now time.Time) (cert *tls.Certificate, created bool, err error) {
	dir := filepath.Join(dataDir, selfSignedDir)
	certPath := filepath.Join(dir, selfSignedCertName)
	keyPath := filepath.Join(dir, selfSignedKeyName)
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	switch {
	case err == nil && certFitsHosts(&c, hosts, now, selfSignedMargin):
		return &c, false, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("self-signed certificate in %s: %w (delete both files to make a new one)", dir, err)
	}
	certPEM, keyPEM, err := makeSelfSigned(hosts, now)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("self-signed certificate: %w", err)
	}
	// Key first: a crash in between leaves a pair that fails to load and is
	// reported, never a certificate beside a foreign key.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return nil, false, err
	}
	c, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, false, fmt.Errorf("self-signed certificate: %w", err)
	}
	return &c, true, nil
}

// makeSelfSigned returns a PEM certificate and PKCS#8 key for hosts.
func makeSelfSigned(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"Gatehouse self-signed (demo only)"}},
		DNSNames:              hosts,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it into place.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// certFingerprint is the hex SHA-256 of a DER certificate, as browsers and
// `openssl x509 -fingerprint -sha256` show it (without colons).
func certFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}
