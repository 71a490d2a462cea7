package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// frontCerts supplies the HTTPS certificate. Implementations: staticCerts
// (files and self_signed modes) and acmeCerts (certmagic).
type frontCerts interface {
	// GetCertificate is the tls.Config hook.
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ready reports why no certificate can be served yet, or nil.
	ready() error
}

var errNoCertificate = errors.New("no certificate loaded")

// staticCerts serves one certificate for every name; reloads swap it
// atomically, so handshakes never see a half-loaded pair.
type staticCerts struct {
	cert atomic.Pointer[tls.Certificate]
}

var _ frontCerts = (*staticCerts)(nil)

func (s *staticCerts) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.cert.Load()
	if c == nil {
		return nil, errNoCertificate
	}
	return c, nil
}

func (s *staticCerts) ready() error {
	c := s.cert.Load()
	if c == nil {
		return errNoCertificate
	}
	if time.Now().After(c.Leaf.NotAfter) {
		return errors.New("certificate expired")
	}
	return nil
}

// loadKeyPair reads a PEM certificate chain and key (tls.mode files). It
// refuses an expired certificate, so that a reload with a stale file keeps
// the one being served.
func loadKeyPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
	}
	if c.Leaf == nil {
		return nil, errors.New("tls.cert_file: no certificate")
	}
	if now.After(c.Leaf.NotAfter) {
		return nil, fmt.Errorf("tls.cert_file: certificate in %s expired at %s", certFile, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(c.Leaf.NotBefore) {
		return nil, fmt.Errorf("tls.cert_file: certificate in %s is not valid before %s", certFile, c.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &c, nil
}
