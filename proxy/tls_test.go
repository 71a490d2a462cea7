package proxy

import (
	"crypto/tls"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
)

func TestTLSPolicy(t *testing.T) {
	cbcSuites := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	}
	tests := []struct {
		name       string
		minVersion string // the front's tls.min_version; empty: config's default
		client     *tls.Config
		wantOK     bool
		wantSuite  uint16      // checked when non-zero
		wantCurve  tls.CurveID // checked when non-zero
		wantVer    uint16      // checked when non-zero
	}{
		{name: "TLS 1.1 only", client: &tls.Config{MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11}},
		{name: "TLS 1.0 only", client: &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}},
		{name: "TLS 1.2 CBC suites only", client: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: cbcSuites}},
		{name: "TLS 1.2 RSA key exchange only", client: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_AES_128_CBC_SHA}}},
		{name: "TLS 1.2 3DES only", client: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}}},
		{name: "TLS 1.2 P-384 only", client: &tls.Config{MaxVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.CurveP384}}},
		{name: "TLS 1.3 P-384 only", client: &tls.Config{MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.CurveP384}}},
		{name: "TLS 1.2 ECDHE AES-GCM", wantOK: true, wantVer: tls.VersionTLS12, wantSuite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			client: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}},
		{name: "TLS 1.2 ECDHE ChaCha20", wantOK: true, wantVer: tls.VersionTLS12, wantSuite: tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			client: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}},
		{name: "TLS 1.2 P-256", wantOK: true, wantCurve: tls.CurveP256,
			client: &tls.Config{MaxVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.CurveP256}}},
		{name: "TLS 1.3 default prefers ML-KEM hybrid", wantOK: true, wantVer: tls.VersionTLS13, wantCurve: tls.X25519MLKEM768},
		{name: "TLS 1.3 X25519", wantOK: true, wantCurve: tls.X25519,
			client: &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}}},
		{name: "min 1.3 refuses TLS 1.2", minVersion: "1.3", client: &tls.Config{MaxVersion: tls.VersionTLS12}},
		{name: "min 1.3 accepts TLS 1.3", minVersion: "1.3", wantOK: true, wantVer: tls.VersionTLS13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := frontTestConfig(t)
			if tt.minVersion != "" {
				cfg.TLS.MinVersion = tt.minVersion
			}
			f := runFront(t, FrontConfig{Config: cfg})
			conf := &tls.Config{}
			if tt.client != nil {
				conf = tt.client.Clone()
			}
			conf.ServerName = "gate.test"
			conf.RootCAs = selfSignedPool(t, f.dataDir)
			c, err := tlsDial(f, conf)
			if !tt.wantOK {
				if err == nil {
					st := c.ConnectionState()
					c.Close()
					t.Fatalf("handshake succeeded with version %x suite %s, want failure", st.Version, tls.CipherSuiteName(st.CipherSuite))
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer c.Close()
			st := c.ConnectionState()
			if tt.wantVer != 0 && st.Version != tt.wantVer {
				t.Errorf("version = %x, want %x", st.Version, tt.wantVer)
			}
			if tt.wantSuite != 0 && st.CipherSuite != tt.wantSuite {
				t.Errorf("suite = %s, want %s", tls.CipherSuiteName(st.CipherSuite), tls.CipherSuiteName(tt.wantSuite))
			}
			if tt.wantCurve != 0 && st.CurveID != tt.wantCurve {
				t.Errorf("curve = %v, want %v", st.CurveID, tt.wantCurve)
			}
		})
	}
}

func TestTLSPolicyConfig(t *testing.T) {
	for _, s := range []string{"1.2", "1.3"} {
		conf, err := newTLSPolicy(config.TLS{MinVersion: s}, nil)
		if err != nil {
			t.Fatalf("newTLSPolicy(%q): %v", s, err)
		}
		if conf.MaxVersion != tls.VersionTLS13 {
			t.Errorf("MaxVersion = %x, want TLS 1.3", conf.MaxVersion)
		}
		for _, id := range conf.CipherSuites {
			for _, bad := range tls.InsecureCipherSuites() {
				if id == bad.ID {
					t.Errorf("insecure suite %s allowed", bad.Name)
				}
			}
		}
	}
	// Empty is refused, not read as "1.2": config resolves the default,
	// and a Config that skipped that step must not get a floor guessed.
	for _, s := range []string{"1.1", "", "1.4", "tls1.2"} {
		if _, err := newTLSPolicy(config.TLS{MinVersion: s}, nil); err == nil {
			t.Errorf("newTLSPolicy(min %q) succeeded, want error", s)
		}
	}
}
