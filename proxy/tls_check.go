package proxy

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// CheckTLSFiles reads the files the TLS settings name (the certificate and
// key for mode files, the ACME CA roots) and returns a Problem for each that
// cannot be used. config.Validate is pure and reads no files; check-config
// and serve run this after it.
func CheckTLSFiles(cfg *config.Config) config.Problems {
	var ps config.Problems
	switch cfg.TLS.Mode {
	case config.TLSModeFiles:
		if _, err := loadKeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile, time.Now()); err != nil {
			ps = append(ps, config.Problem{Msg: err.Error()})
		}
	case config.TLSModeACME:
		for i, f := range cfg.TLS.ACME.CARoots {
			if err := addCARoot(x509.NewCertPool(), f); err != nil {
				ps = append(ps, config.Problem{Path: fmt.Sprintf("tls.acme.ca_roots[%d]", i), Msg: err.Error()})
			}
		}
	}
	return ps
}
