package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// pebbleOrderRE matches the line Pebble logs for each new order.
var pebbleOrderRE = regexp.MustCompile(`(?m)^.*Added order .*$`)

// TestTwoReplicasOneACMEOrder starts two replicas on one Redis at the same
// moment, both in tls.mode acme for the same name against a real Pebble:
// through certmagic's storage and locks in Redis they place one order
// between them and serve the same certificate. Pebble validates against
// replica A only, so when B holds the lock, A answers B's challenge from
// the shared storage.
func TestTwoReplicasOneACMEOrder(t *testing.T) {
	portA, portB := harness.FreePort(t), harness.FreePort(t)
	dnsAddr, _ := startDNS(t, gateHost)
	p := startPebble(t, dnsAddr, portA, harness.FreePort(t))
	r := harness.StartRedisWith(t, harness.RedisOptions{})
	masterKey := filepath.Join(t.TempDir(), "master.key")
	raw := make([]byte, 32)
	rand.Read(raw)
	writeFile0600(t, masterKey, base64.StdEncoding.EncodeToString(raw)+"\n")
	cfg := func(port int) string {
		return fmt.Sprintf(`public_url: https://%s
listen:
  https: "127.0.0.1:%d"
redis: {addr: %q}
secrets: {master_key_file: %s}
tls:
  mode: acme
  acme:
    email: ops@example.com
    directory: %s
    ca_roots: [%s]
`, gateHost, port, r.Addr, masterKey, p.directory, p.caFile)
	}
	gs := harness.StartGatehousesYAML(t, cfg(portA), cfg(portB))

	roots := x509.NewCertPool()
	roots.AddCert(p.root(t))
	var serials []string
	for _, g := range gs {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", g.HTTPSAddr,
			&tls.Config{ServerName: gateHost, RootCAs: roots})
		if err != nil {
			t.Fatalf("replica %s: TLS handshake trusting only Pebble's root: %v", g.HTTPSAddr, err)
		}
		serials = append(serials, conn.ConnectionState().PeerCertificates[0].SerialNumber.String())
		conn.Close()
	}
	if serials[0] != serials[1] {
		t.Errorf("replicas serve different certificates (serials %v): two orders", serials)
	}
	if orders := pebbleOrderRE.FindAllString(p.log.String(), -1); len(orders) != 1 {
		t.Errorf("Pebble saw %d orders, want 1:\n%s", len(orders), p.log.String())
	}
}
