package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// CA is a throwaway ECDSA P-256 certificate authority for one test (or one
// demo run). It issues server certificates for Dex, for gatehouse's
// `tls.mode: files` and for test HTTPS servers, and it is what Chromium and
// Go clients are told to trust.
//
// Usage:
//
//	ca := harness.NewCA(t)
//	certFile, keyFile := ca.Issue(t, "gate.test", "app.test", "127.0.0.1")
//	// gatehouse: tls: {mode: files, cert_file: certFile, key_file: keyFile}
//	// Go client:  &tls.Config{RootCAs: ca.Pool()}
//	// config:     sso.ca_roots: [ca.CAFile]
//	// Chromium:   harness.NewBrowser(t, harness.BrowserOptions{CA: ca})
type CA struct {
	// CAFile is the PEM file holding the CA certificate (0644).
	CAFile string
	// Cert is the CA certificate.
	Cert *x509.Certificate

	dir string
	key *ecdsa.PrivateKey

	mu     sync.Mutex // guards serial and leaves
	serial int64
	leaves []string // SPKI hashes of the certificates issued so far
}

// NewCA creates a CA whose files live in a fresh t.TempDir(). It fails the
// test on error.
func NewCA(t testing.TB) *CA {
	t.Helper()
	ca, err := CreateCA(t.TempDir())
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

// CreateCA creates a CA and writes its certificate to DIR/ca.pem. It is the
// error-returning form of NewCA, for programs (the demo) rather than tests.
// The CA's private key stays in memory only.
func CreateCA(dir string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Gatehouse test CA " + now.Format("2006-01-02T15:04:05.000")},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pemBytes("CERTIFICATE", der), 0o644); err != nil {
		return nil, fmt.Errorf("write CA certificate: %w", err)
	}
	return &CA{CAFile: caFile, Cert: cert, dir: dir, key: key, serial: 1}, nil
}

// Pool returns a new pool holding only the CA certificate, for
// tls.Config.RootCAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// SPKIHash returns the base64 SHA-256 of the CA's SubjectPublicKeyInfo, the
// form Chromium's --ignore-certificate-errors-spki-list takes. Because Issue
// writes the CA certificate into every chain it issues, a browser given
// this hash accepts every certificate of this CA as valid (see BrowserOptions).
func (ca *CA) SPKIHash() string {
	sum := sha256.Sum256(ca.Cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// spkiHashes returns the SPKI hashes of the CA and of every certificate it
// has issued so far (see BrowserOptions.CA).
func (ca *CA) spkiHashes() []string {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return append([]string{ca.SPKIHash()}, ca.leaves...)
}

// Issue issues a server certificate for hosts (DNS names or IP addresses;
// the first is the subject's common name) and writes it next to the CA
// certificate. certFile holds the leaf followed by the CA certificate (a
// full chain, as servers send it); keyFile holds the PKCS#8 EC key (0600).
// It fails the test on error.
func (ca *CA) Issue(t testing.TB, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, err := ca.IssueFiles(hosts...)
	if err != nil {
		t.Fatalf("CA.Issue(%q): %v", hosts, err)
	}
	return certFile, keyFile
}

// IssueFiles is the error-returning form of Issue.
func (ca *CA) IssueFiles(hosts ...string) (certFile, keyFile string, err error) {
	certPEM, keyPEM, n, err := ca.issuePEM(hosts)
	if err != nil {
		return "", "", err
	}
	base := fmt.Sprintf("%s-%d", fileSafe(hosts[0]), n)
	certFile = filepath.Join(ca.dir, base+".crt")
	keyFile = filepath.Join(ca.dir, base+".key")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("write key: %w", err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("write certificate: %w", err)
	}
	return certFile, keyFile, nil
}

// TLSCertificate issues a certificate for hosts and returns it in memory,
// chain included, for an httptest server or any Go TLS listener:
//
//	srv := httptest.NewUnstartedServer(h)
//	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.TLSCertificate(t, "app.test")}}
//	srv.StartTLS()
func (ca *CA) TLSCertificate(t testing.TB, hosts ...string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, _, err := ca.issuePEM(hosts)
	if err != nil {
		t.Fatalf("CA.TLSCertificate(%q): %v", hosts, err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("CA.TLSCertificate(%q): %v", hosts, err)
	}
	return c
}

// issuePEM returns a leaf+CA chain and the leaf key, PEM encoded, and the
// leaf's serial number.
func (ca *CA) issuePEM(hosts []string) (certPEM, keyPEM []byte, serial int64, err error) {
	if len(hosts) == 0 {
		return nil, nil, 0, errors.New("at least one host is required")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("generate key: %w", err)
	}
	ca.mu.Lock()
	ca.serial++
	serial = ca.serial
	ca.mu.Unlock()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("create certificate: %w", err)
	}
	if leaf, err := x509.ParseCertificate(der); err == nil {
		sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
		ca.mu.Lock()
		ca.leaves = append(ca.leaves, base64.StdEncoding.EncodeToString(sum[:]))
		ca.mu.Unlock()
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("marshal key: %w", err)
	}
	certPEM = append(pemBytes("CERTIFICATE", der), pemBytes("CERTIFICATE", ca.Cert.Raw)...)
	return certPEM, pemBytes("PRIVATE KEY", pkcs8), serial, nil
}

func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// fileSafe turns a host name into a file name part.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, s)
}
