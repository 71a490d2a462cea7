package e2e

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSSHPreAuthFlood is issue 12's pre-auth acceptance test against the
// real binary: 2,000 idle TCP connections from one address that never
// start the SSH handshake do not keep a person on another address out. Her
// stock ssh client (bound key, BatchMode) gets a shell within 2 s while
// the flood is held, and /metrics counts the refused connections.
func TestSSHPreAuthFlood(t *testing.T) {
	e := startSSHEnv(t)
	p := []string{"-p", e.sshPort}
	dest := e.dest(e.login, "web")
	// Bind the key first (an approval in the browser), as a real person has.
	if r, code := e.run(t, true, "", "ssh", append(p, dest, "true")...); code != 0 {
		t.Fatalf("first contact: exit %d, stderr %q", code, r.stderr.String())
	}

	const flood = 2000
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	for i := 0; i < flood; i++ {
		c, err := d.Dial("tcp", e.g.SSHAddr)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		held = append(held, c)
	}
	// Every connection the gateway kept is still waiting for a handshake
	// that never comes; the rest were closed at once.
	open := countOpen(held)
	if open > 100 {
		t.Errorf("%d of %d idle pre-auth connections from one address are held, want the per-source cap", open, flood)
	}
	t.Logf("flood: %d of %d connections held by the gateway", open, flood)

	start := time.Now()
	r, code := e.run(t, false, "", "ssh", append(p, "-b", "127.0.0.2", "-o", "BatchMode=yes", dest, "echo in")...)
	took := time.Since(start)
	if code != 0 || r.stdout.String() != "in\n" {
		t.Fatalf("person on 127.0.0.2 during the flood: exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
	}
	if took > 2*time.Second {
		t.Errorf("person on 127.0.0.2 got in after %v, want within 2s", took)
	}

	refused := metricValue(t, "http://"+e.g.AdminAddr+"/metrics", `gatehouse_ssh_preauth_refused_total{reason="per_source"}`)
	if refused < float64(flood-open) {
		t.Errorf("per_source refusals in /metrics = %v, want at least %d", refused, flood-open)
	}
}

// countOpen returns how many of conns the peer has not closed: a read
// that times out means the connection is still open and silent (the
// gateway sends its version line only after the client's); EOF or a reset
// means it was refused.
func countOpen(conns []net.Conn) int {
	n := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		buf := make([]byte, 256)
		_, err := c.Read(buf)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			n++
		} else if err == nil {
			n++ // a version line: open
		}
	}
	return n
}

// metricValue fetches a Prometheus text page and returns the value of the
// series named exactly by series (name plus labels), or 0 if absent.
func metricValue(t *testing.T, url, series string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(string(body))
	if m == nil {
		if !strings.Contains(string(body), strings.SplitN(series, "{", 2)[0]) {
			t.Errorf("%s has no %s at all", url, series)
		}
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("metric %s: %v", series, err)
	}
	return v
}
