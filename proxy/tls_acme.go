package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/caddyserver/certmagic"

	"github.com/gatehouse-dev/gatehouse/config"
)

// acmeCerts obtains and renews certificates with certmagic. It owns its
// cache and config and never touches certmagic.Default or DefaultACME.
type acmeCerts struct {
	cache      *certmagic.Cache
	magic      *certmagic.Config
	issuer     *certmagic.ACMEIssuer
	publicHost string
}

var _ frontCerts = (*acmeCerts)(nil)

// acmeListeners are the bound addresses that answer ACME challenges: the
// HTTPS listener (TLS-ALPN-01) and the optional plain HTTP one (HTTP-01).
type acmeListeners struct {
	https net.Addr
	http  net.Addr // nil: HTTP-01 off
}

// newACMECerts builds certmagic for cfg. Challenges are only ever answered
// on Gatehouse's own listeners: certmagic is told their ports, finds them
// taken (by us) and so never opens a listener of its own. Certificates,
// accounts and locks live in kv when it is set (shared by replicas), else
// in files under dataDir.
func newACMECerts(cfg *config.Config, dataDir string, kv CertKV, ls acmeListeners, logger *slog.Logger) (*acmeCerts, error) {
	// Config resolves an absent directory to Let's Encrypt. An empty one
	// here means the Config skipped that step; certmagic would then pick
	// its own default CA, so refuse rather than let a library choose.
	if cfg.TLS.ACME.Directory == "" {
		return nil, errors.New("tls.acme.directory is required")
	}
	roots, err := loadCARoots(cfg.TLS.ACME.CARoots)
	if err != nil {
		return nil, err
	}
	pub, err := frontPublicHost(cfg)
	if err != nil {
		return nil, err
	}
	zl := newZapToSlog(logger.With("library", "certmagic"))
	a := &acmeCerts{publicHost: pub}
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return a.magic, nil },
		Logger:           zl,
	})
	var storage certmagic.Storage = &certmagic.FileStorage{Path: filepath.Join(dataDir, "certmagic")}
	if kv != nil {
		storage = NewCertStorage(kv, CertStorageOptions{Logger: logger})
	}
	a.magic = certmagic.New(a.cache, certmagic.Config{Storage: storage, Logger: zl})
	tmpl := certmagic.ACMEIssuer{
		CA:                      cfg.TLS.ACME.Directory,
		Email:                   cfg.TLS.ACME.Email,
		Agreed:                  true,
		TrustedRoots:            roots,
		DisableTLSALPNChallenge: false,
		Logger:                  zl,
	}
	host, port, err := addrHostPort(ls.https)
	if err != nil {
		return nil, err
	}
	tmpl.ListenHost, tmpl.AltTLSALPNPort = host, port
	if ls.http == nil {
		tmpl.DisableHTTPChallenge = true
	} else {
		_, hport, err := addrHostPort(ls.http)
		if err != nil {
			return nil, err
		}
		tmpl.AltHTTPPort = hport
	}
	a.issuer = certmagic.NewACMEIssuer(a.magic, tmpl)
	a.magic.Issuers = []certmagic.Issuer{a.issuer}
	return a, nil
}

// manage starts obtaining and renewing certificates for hosts in the
// background; ctx bounds that work.
func (a *acmeCerts) manage(ctx context.Context, hosts []string) error {
	if err := a.magic.ManageAsync(ctx, hosts); err != nil {
		return fmt.Errorf("acme: manage %v: %w", hosts, err)
	}
	return nil
}

// stop ends certmagic's maintenance goroutine.
func (a *acmeCerts) stop() { a.cache.Stop() }

func (a *acmeCerts) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.magic.GetCertificate(hello)
}

// handleHTTPChallenge answers an ACME HTTP-01 request and reports whether r
// was one.
func (a *acmeCerts) handleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	return a.issuer.HandleHTTPChallenge(w, r)
}

func (a *acmeCerts) ready() error {
	for _, c := range a.cache.AllMatchingCertificates(a.publicHost) {
		if !c.Expired() {
			return nil
		}
	}
	return fmt.Errorf("acme: no certificate yet for %s", a.publicHost)
}

// loadCARoots reads PEM files into a pool; no files means the system roots.
func loadCARoots(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool := x509.NewCertPool()
	for i, f := range files {
		if err := addCARoot(pool, f); err != nil {
			return nil, fmt.Errorf("tls.acme.ca_roots[%d]: %w", i, err)
		}
	}
	return pool, nil
}

func addCARoot(pool *x509.CertPool, file string) error {
	pemData, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !pool.AppendCertsFromPEM(pemData) {
		return fmt.Errorf("no PEM certificate in %s", file)
	}
	return nil
}

func addrHostPort(a net.Addr) (string, int, error) {
	if a == nil {
		return "", 0, errors.New("acme: no listener address")
	}
	h, p, err := net.SplitHostPort(a.String())
	if err != nil {
		return "", 0, fmt.Errorf("acme: listener address %s: %w", a, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("acme: listener address %s: %w", a, err)
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
		h = "" // bound to every address: certmagic would try ":port"
	}
	return h, port, nil
}
