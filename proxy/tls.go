package proxy

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// acmeTLSALPN is the ALPN protocol of the ACME TLS-ALPN-01 challenge
// (RFC 8737); certmagic answers it in GetCertificate.
const acmeTLSALPN = "acme-tls/1"

// tls12Suites are the only TLS 1.2 cipher suites Gatehouse accepts: ECDHE key
// exchange with an AEAD. TLS 1.3 suites are not configurable in crypto/tls
// and are all AEADs.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// tlsCurves are the key exchange groups, most preferred first: the ML-KEM
// hybrid, then X25519, then P-256 for older clients.
var tlsCurves = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256}

// tlsMinVersion maps tls.min_version to a crypto/tls version. Config
// resolves an absent key to "1.2"; an empty value here means the Config
// skipped that step, and the floor is not guessed.
func tlsMinVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("tls.min_version %q: must be \"1.2\" or \"1.3\"", s)
}

// newTLSPolicy returns the HTTPS listener's tls.Config: protocol floor and
// ceiling, suites and curves from Gatehouse's policy, certificates from
// getCert. Session tickets are keyed by a ticketRotator, never by crypto/tls's
// automatic keys.
func newTLSPolicy(t config.TLS, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) (*tls.Config, error) {
	minV, err := tlsMinVersion(t.MinVersion)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:       minV,
		MaxVersion:       tls.VersionTLS13,
		CipherSuites:     tls12Suites,
		CurvePreferences: tlsCurves,
		GetCertificate:   getCert,
		NextProtos:       []string{"h2", "http/1.1", acmeTLSALPN},
	}, nil
}

// certFitsHosts reports whether leaf is valid at now (with margin to spare)
// and names every host.
func certFitsHosts(cert *tls.Certificate, hosts []string, now time.Time, margin time.Duration) bool {
	if cert == nil || cert.Leaf == nil {
		return false
	}
	if now.Before(cert.Leaf.NotBefore) || now.Add(margin).After(cert.Leaf.NotAfter) {
		return false
	}
	for _, h := range hosts {
		if cert.Leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}
