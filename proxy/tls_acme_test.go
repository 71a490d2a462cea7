package proxy

import (
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/config"
)

// TestACMEChallengesOnOwnListeners checks that certmagic is pointed at
// Gatehouse's own listeners, so that it never opens one of its own, and that
// HTTP-01 is off without a plain HTTP listener. (Issuance against a real
// ACME server is the e2e Pebble test.)
func TestACMEChallengesOnOwnListeners(t *testing.T) {
	cfg := frontTestConfig(t)
	cfg.TLS = config.TLS{Mode: config.TLSModeACME, ACME: config.ACME{Email: "ops@example.com", Directory: "https://acme.test/dir"}}
	https := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443}
	plain := &net.TCPAddr{IP: net.IPv4zero, Port: 8080}
	type got struct {
		CA                   string
		ListenHost           string
		TLSALPNPort          int
		HTTPPort             int
		DisableHTTPChallenge bool
		DisableTLSALPN       bool
	}
	tests := []struct {
		name string
		ls   acmeListeners
		want got
	}{
		{"https and http", acmeListeners{https: https, http: plain}, got{"https://acme.test/dir", "127.0.0.1", 8443, 8080, false, false}},
		{"https only", acmeListeners{https: https}, got{"https://acme.test/dir", "127.0.0.1", 8443, 0, true, false}},
		{"any address", acmeListeners{https: &net.TCPAddr{IP: net.IPv6unspecified, Port: 443}}, got{"https://acme.test/dir", "", 443, 0, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := newACMECerts(cfg, t.TempDir(), nil, tt.ls, frontTestLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer a.stop()
			i := a.issuer
			g := got{i.CA, i.ListenHost, i.AltTLSALPNPort, i.AltHTTPPort, i.DisableHTTPChallenge, i.DisableTLSALPNChallenge}
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("issuer (-want +got):\n%s", diff)
			}
			if err := a.ready(); err == nil || !strings.Contains(err.Error(), "no certificate yet for gate.test") {
				t.Errorf("ready() before issuance = %v, want no certificate", err)
			}
		})
	}
	// No directory is refused: certmagic would otherwise pick its own
	// default CA, and config is the one place that resolves defaults.
	cfg.TLS.ACME.Directory = ""
	if a, err := newACMECerts(cfg, t.TempDir(), nil, acmeListeners{https: https}, frontTestLogger(t)); err == nil {
		a.stop()
		t.Errorf("newACMECerts without a directory succeeded")
	} else if err.Error() != "tls.acme.directory is required" {
		t.Errorf("newACMECerts without a directory = %v", err)
	}
}
