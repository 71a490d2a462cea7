package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// TestACMEWithPebble has certmagic inside the real binary obtain a
// certificate from a real Pebble ACME server on loopback. Pebble validates
// for real: it resolves gate.test through a DNS server in this test (which
// answers 127.0.0.1) and connects to Gatehouse's own listeners (HTTPS for
// TLS-ALPN-01, plain HTTP for HTTP-01; each subtest forces one of them). A client that trusts only Pebble's
// root then verifies the chain Gatehouse serves.
func TestACMEWithPebble(t *testing.T) {
	for _, tc := range []struct {
		name     string
		withHTTP bool // listen.http on: HTTP-01 offered besides TLS-ALPN-01
	}{
		{"tls-alpn-01 only", false},
		{"with http listener", true},
	} {
		t.Run(tc.name, func(t *testing.T) { testACME(t, tc.withHTTP) })
	}
}

func testACME(t *testing.T, withHTTP bool) {
	httpsPort, httpPort := harness.FreePort(t), harness.FreePort(t)
	dnsAddr, queried := startDNS(t, gateHost)
	// certmagic picks among the enabled challenge types at random. To know
	// which one succeeded, point Pebble's other validation port at a port
	// where nothing listens: that type fails and certmagic falls back.
	pebbleTLSPort, pebbleHTTPPort := httpsPort, harness.FreePort(t)
	if withHTTP {
		pebbleTLSPort, pebbleHTTPPort = harness.FreePort(t), httpPort
	}
	p := startPebble(t, dnsAddr, pebbleTLSPort, pebbleHTTPPort)

	httpLine := ""
	if withHTTP {
		httpLine = fmt.Sprintf("  http: \"127.0.0.1:%d\"\n", httpPort)
	}
	// StartGatehouseYAML waits for /readyz, which for tls.mode acme holds
	// until certmagic has a certificate for the public host.
	g := harness.StartGatehouseYAML(t, fmt.Sprintf(`public_url: https://%s
listen:
  https: "127.0.0.1:%d"
%stls:
  mode: acme
  acme:
    email: ops@example.com
    directory: %s
    ca_roots: [%s]
`, gateHost, httpsPort, httpLine, p.directory, p.caFile))

	if !queried() {
		t.Errorf("pebble never resolved %s through the test DNS server: the challenge was not validated against gatehouse", gateHost)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.root(t))
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", g.HTTPSAddr,
		&tls.Config{ServerName: gateHost, RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS handshake trusting only Pebble's root: %v", err)
	}
	cs := conn.ConnectionState()
	conn.Close()
	leaf := cs.PeerCertificates[0]
	if err := leaf.VerifyHostname(gateHost); err != nil {
		t.Errorf("served certificate: %v", err)
	}
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) < 3 {
		t.Fatalf("verified chains = %d, want leaf -> Pebble intermediate -> Pebble root", len(cs.VerifiedChains))
	}
	chain := cs.VerifiedChains[0]
	if !strings.Contains(chain[len(chain)-1].Subject.CommonName, "Pebble") {
		t.Errorf("chain ends at %q, want Pebble's root", chain[len(chain)-1].Subject)
	}
	t.Logf("served %v, issued by %q, valid until %s", leaf.DNSNames, leaf.Issuer, leaf.NotAfter.Format(time.RFC3339))

	pebbleLog := p.log.String()
	if !strings.Contains(pebbleLog, "set VALID by completed challenge") {
		t.Errorf("pebble log shows no successful validation")
	}
	httpAttempt := fmt.Sprintf("Attempting to validate w/ HTTP: http://%s:%d/.well-known/acme-challenge/", gateHost, httpPort)
	switch {
	case withHTTP && !strings.Contains(pebbleLog, httpAttempt):
		t.Errorf("pebble log has no %q: HTTP-01 against gatehouse's http listener was not what succeeded", httpAttempt)
	case !withHTTP && strings.Contains(pebbleLog, "validate w/ HTTP"):
		t.Errorf("pebble validated over HTTP although gatehouse has no http listener")
	}
	if withHTTP {
		checkHTTPRedirect(t, g.HTTPAddr)
	}
}

// checkHTTPRedirect checks that the plain HTTP listener answers anything
// other than an ACME challenge with a redirect to HTTPS.
func checkHTTPRedirect(t *testing.T, addr string) {
	t.Helper()
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/some/path?q=1", nil)
	req.Host = gateHost
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET over plain HTTP: %v", err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode < 300 || resp.StatusCode > 308 || !strings.HasPrefix(loc, "https://"+gateHost) {
		t.Errorf("plain HTTP GET: %s Location %q, want a redirect to https://%s", resp.Status, loc, gateHost)
	}
}

// startDNS serves A records for host only (127.0.0.1) on a UDP port and
// reports whether host was ever queried.
func startDNS(t *testing.T, host string) (addr string, queried func() bool) {
	t.Helper()
	// Pebble's resolver asks over TCP, other resolvers over UDP: serve both
	// on one port.
	pc, ln := listenUDPAndTCP(t)
	var mu sync.Mutex // guards asked
	asked := false
	fqdn := dns.Fqdn(host)
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		for _, q := range r.Question {
			if !strings.EqualFold(q.Name, fqdn) {
				m.Rcode = dns.RcodeNameError
				continue
			}
			mu.Lock()
			asked = true
			mu.Unlock()
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	return pc.LocalAddr().String(), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return asked
	}
}

// listenUDPAndTCP listens on one free loopback port with both UDP and TCP.
func listenUDPAndTCP(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close()
		lastErr = err
	}
	t.Fatalf("no port free for both UDP and TCP: %v", lastErr)
	return nil, nil
}

// pebble is a running Pebble ACME server.
type pebble struct {
	directory string // ACME directory URL
	mgmt      string // management API base URL
	caFile    string // PEM of the CA that issued Pebble's HTTPS certificate
	client    *http.Client
	log       harness.LineLog
}

// startPebble starts .tools/bin/pebble on loopback ports with its own HTTPS
// certificate from a test CA. Its validation authority resolves names via
// dnsAddr and connects to httpPort (HTTP-01) and tlsPort (TLS-ALPN-01).
func startPebble(t *testing.T, dnsAddr string, tlsPort, httpPort int) *pebble {
	t.Helper()
	bin := harness.RequireTool(t, "pebble")
	ca := harness.NewCA(t)
	certFile, keyFile := ca.Issue(t, "127.0.0.1", "localhost")
	listen, mgmt := harness.FreeAddr(t), harness.FreeAddr(t)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        mgmt,
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}
	data, _ := json.Marshal(conf)
	confFile := filepath.Join(t.TempDir(), "pebble.json")
	if err := os.WriteFile(confFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	p := &pebble{
		directory: "https://" + listen + "/dir",
		mgmt:      "https://" + mgmt,
		caFile:    ca.CAFile,
		client:    &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}},
		log:       harness.NewLineLog(t, "pebble"),
	}
	cmd := exec.Command(bin, "-config", confFile, "-dnsserver", dnsAddr)
	// No random sleep before validation, and no deliberately rejected
	// nonces: both only slow the test down.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pebble: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		p.log.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := p.client.Get(p.directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-exited:
			t.Fatalf("pebble exited before it was ready; log:\n%s", p.log.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble not ready after 30s (%v); log:\n%s", err, p.log.String())
		}
	}
}

// root fetches Pebble's root certificate from its management API.
func (p *pebble) root(t *testing.T) *x509.Certificate {
	t.Helper()
	resp, err := p.client.Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("fetch pebble root: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fetch pebble root: %s %v", resp.Status, err)
	}
	block, _ := pem.Decode(body)
	if block == nil {
		t.Fatalf("pebble root is not PEM: %q", body)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse pebble root: %v", err)
	}
	return c
}
