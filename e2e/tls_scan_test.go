package e2e

import (
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// This file judges the output of the two Debian TLS scanners, sslscan (XML)
// and testssl (flat JSON), against Gatehouse's TLS policy: TLS 1.2 and 1.3
// only (or 1.3 only), ECDHE with AEAD ciphers only, no known vulnerability,
// HSTS. The judges are tested here against recorded scans of a deliberately
// weak server, so that a judge that passes everything cannot go unnoticed.

// sslscanDoc is the part of `sslscan --xml=-` output that the policy needs.
type sslscanDoc struct {
	Tests []sslscanTest `xml:"ssltest"`
	Error string        `xml:"error"`
}

type sslscanTest struct {
	Host      string `xml:"host,attr"`
	Port      string `xml:"port,attr"`
	Protocols []struct {
		Type    string `xml:"type,attr"`
		Version string `xml:"version,attr"`
		Enabled string `xml:"enabled,attr"`
	} `xml:"protocol"`
	Renegotiation struct {
		Supported string `xml:"supported,attr"`
		Secure    string `xml:"secure,attr"`
	} `xml:"renegotiation"`
	Heartbleed []struct {
		SSLVersion string `xml:"sslversion,attr"`
		Vulnerable string `xml:"vulnerable,attr"`
	} `xml:"heartbleed"`
	Ciphers []struct {
		Status     string `xml:"status,attr"`
		SSLVersion string `xml:"sslversion,attr"`
		Cipher     string `xml:"cipher,attr"`
	} `xml:"cipher"`
}

// tls13Suites are the TLS 1.3 suites; all are AEADs with ephemeral keys.
var tls13Suites = []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}

// sslscanProblems returns every way the scan breaks the policy; minVersion
// is the configured tls.min_version ("1.2" or "1.3").
func sslscanProblems(xmlOut []byte, minVersion string) []string {
	var doc sslscanDoc
	if err := xml.Unmarshal(xmlOut, &doc); err != nil {
		return []string{fmt.Sprintf("sslscan output is not XML: %v", err)}
	}
	if doc.Error != "" {
		return []string{"sslscan error: " + doc.Error}
	}
	if len(doc.Tests) != 1 {
		return []string{fmt.Sprintf("sslscan reported %d tests, want 1", len(doc.Tests))}
	}
	st := doc.Tests[0]
	var ps []string
	want := map[string]string{"ssl 2": "0", "ssl 3": "0", "tls 1.0": "0", "tls 1.1": "0", "tls 1.2": "1", "tls 1.3": "1"}
	if minVersion == "1.3" {
		want["tls 1.2"] = "0"
	}
	seen := map[string]bool{}
	for _, p := range st.Protocols {
		k := p.Type + " " + p.Version
		seen[k] = true
		if w, ok := want[k]; ok && p.Enabled != w {
			ps = append(ps, fmt.Sprintf("protocol %s enabled=%s, want %s", k, p.Enabled, w))
		}
	}
	for k := range want {
		if !seen[k] {
			ps = append(ps, fmt.Sprintf("protocol %s not reported", k))
		}
	}
	if st.Renegotiation.Supported == "1" && st.Renegotiation.Secure != "1" {
		ps = append(ps, "insecure renegotiation supported")
	}
	for _, h := range st.Heartbleed {
		if h.Vulnerable != "0" {
			ps = append(ps, "heartbleed vulnerable on "+h.SSLVersion)
		}
	}
	accepted := 0
	for _, c := range st.Ciphers {
		if c.Status != "accepted" && c.Status != "preferred" {
			continue
		}
		accepted++
		switch {
		case c.SSLVersion == "TLSv1.3" && slices.Contains(tls13Suites, c.Cipher):
		case c.SSLVersion == "TLSv1.2" && strictTLS12Cipher(c.Cipher):
		default:
			ps = append(ps, fmt.Sprintf("cipher %s accepted on %s: not ECDHE with an AEAD", c.Cipher, c.SSLVersion))
		}
	}
	if accepted == 0 {
		ps = append(ps, "no accepted cipher reported: the scan did not reach the server")
	}
	return ps
}

// strictTLS12Cipher reports whether an OpenSSL TLS 1.2 cipher name is ECDHE
// key exchange with AES-GCM or ChaCha20-Poly1305.
func strictTLS12Cipher(name string) bool {
	if !strings.HasPrefix(name, "ECDHE-ECDSA-") && !strings.HasPrefix(name, "ECDHE-RSA-") {
		return false
	}
	return strings.Contains(name, "-GCM-") || strings.HasSuffix(name, "-CHACHA20-POLY1305")
}

// testsslFinding is one entry of testssl's flat JSON (--jsonfile).
type testsslFinding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Finding  string `json:"finding"`
}

// testsslIgnoredWarnings are WARN findings about the scanner's own OpenSSL,
// not about the server.
var testsslIgnoredWarnings = []string{"engine_problem"}

// testsslProblems returns every way a `testssl -p -s -f -U -h` scan breaks
// the policy. Any finding rated LOW or worse fails (TLS 1.0 is only LOW in
// testssl 3.0), as does any WARN or FATAL about the scan itself; and the
// findings that prove each section ran must be present with the right
// verdict.
func testsslProblems(jsonOut []byte, minVersion string) []string {
	var fs []testsslFinding
	if err := json.Unmarshal(jsonOut, &fs); err != nil {
		return []string{fmt.Sprintf("testssl output is not JSON: %v", err)}
	}
	var ps []string
	byID := map[string]testsslFinding{}
	for _, f := range fs {
		byID[f.ID] = f
		switch f.Severity {
		case "OK", "INFO":
		case "WARN":
			if !slices.Contains(testsslIgnoredWarnings, f.ID) {
				ps = append(ps, fmt.Sprintf("%s: WARN %s", f.ID, f.Finding))
			}
		default: // LOW, MEDIUM, HIGH, CRITICAL, FATAL
			ps = append(ps, fmt.Sprintf("%s: %s %s", f.ID, f.Severity, f.Finding))
		}
	}
	tls12 := "offered"
	if minVersion == "1.3" {
		tls12 = "not offered"
	}
	for _, r := range []struct{ id, prefix string }{
		{"SSLv2", "not offered"}, {"SSLv3", "not offered"}, {"TLS1", "not offered"},
		{"TLS1_1", "not offered"}, {"TLS1_2", tls12}, {"TLS1_3", "offered"},
		{"cipherlist_NULL", "not offered"}, {"cipherlist_aNULL", "not offered"},
		{"cipherlist_EXPORT", "not offered"}, {"cipherlist_LOW", "not offered"},
		{"cipherlist_3DES_IDEA", "not offered"}, {"cipherlist_AVERAGE", "not offered"},
		{"cipherlist_STRONG", "offered"}, {"PFS", "offered"},
		{"HSTS_time", ""}, {"heartbleed", "not vulnerable"}, {"ROBOT", "not vulnerable"},
		{"SWEET32", "not vulnerable"}, {"LUCKY13", "not vulnerable"}, {"BEAST", "not vulnerable"},
	} {
		f, ok := byID[r.id]
		switch {
		case !ok:
			ps = append(ps, r.id+": missing from the scan")
		case !strings.HasPrefix(f.Finding, r.prefix):
			ps = append(ps, fmt.Sprintf("%s: %q, want %q", r.id, f.Finding, r.prefix))
		}
	}
	if f, ok := byID["HSTS_time"]; ok && f.Severity != "OK" {
		ps = append(ps, fmt.Sprintf("HSTS_time: %s %s (want max-age of at least a year)", f.Severity, f.Finding))
	}
	return ps
}

// TestScanJudges runs the judges on recorded scans: a weak server (TLS 1.0
// and 1.1, a CBC suite) must fail with the right problems; a scan of
// Gatehouse must pass.
func TestScanJudges(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "tls", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name, file string
		judge      func([]byte, string) []string
		min        string
		want       []string // substrings, each of which some problem must contain
	}{
		{"sslscan weak", "sslscan-weak.xml", sslscanProblems, "1.2", []string{
			"protocol tls 1.0 enabled=1", "protocol tls 1.1 enabled=1", "cipher ECDHE-ECDSA-AES128-SHA accepted on TLSv1.2",
		}},
		{"sslscan weak as 1.3-only", "sslscan-weak.xml", sslscanProblems, "1.3", []string{"protocol tls 1.2 enabled=1"}},
		{"sslscan good", "sslscan-good.xml", sslscanProblems, "1.2", nil},
		{"sslscan good is not 1.3-only", "sslscan-good.xml", sslscanProblems, "1.3", []string{"protocol tls 1.2 enabled=1"}},
		{"sslscan unreachable", "sslscan-unreachable.xml", sslscanProblems, "1.2", []string{"sslscan error: Could not open a connection"}},
		{"testssl weak", "testssl-weak.json", testsslProblems, "1.2", []string{
			"TLS1: LOW offered", "TLS1_1: LOW offered", "BEAST_CBC_TLS1: MEDIUM", "cipherlist_AVERAGE: LOW",
			"LUCKY13: LOW", "security_headers: MEDIUM",
		}},
		{"testssl good", "testssl-good.json", testsslProblems, "1.2", nil},
		{"testssl truncated", "testssl-truncated.json", testsslProblems, "1.2", []string{
			"heartbleed: missing", "HSTS_time: missing",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.judge(read(tc.file), tc.min)
			if tc.want == nil && len(got) > 0 {
				t.Errorf("problems = %q, want none", got)
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, w) }) {
					t.Errorf("problems = %q, want one containing %q", got, w)
				}
			}
		})
	}
}

// TestSSLScanCatchesWeakServer scans, with the same sslscan invocation as
// TestTLSScanners, an in-process server that allows TLS 1.0 and a CBC
// suite: the judge must report both, or the scan proves nothing.
func TestSSLScanCatchesWeakServer(t *testing.T) {
	sslscan := harness.RequireTool(t, "sslscan")
	ca := harness.NewCA(t)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS10,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		Certificates: []tls.Certificate{ca.TLSCertificate(t, gateHost)},
	}
	srv.StartTLS()
	defer srv.Close()
	out := runTool(t, time.Minute, sslscan, "--xml=-", "--no-colour", "--sni-name="+gateHost, srv.Listener.Addr().String())
	got := sslscanProblems(out, "1.2")
	for _, w := range []string{"protocol tls 1.0 enabled=1", "cipher ECDHE-ECDSA-AES128-SHA accepted"} {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, w) }) {
			t.Errorf("problems = %q, want one containing %q", got, w)
		}
	}
}
