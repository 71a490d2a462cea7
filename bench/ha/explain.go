package main

import (
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"time"
)

// explain lists the Redis commands of single operations on replica A,
// recorded with MONITOR after the load: a request whose cookie the
// replica verified less than a second ago, a request with a session it
// has never seen (m.cold[0], kept out of the cold phase), and one SSH
// session.
func explain(e *env, pool *x509.CertPool, m *minted, size int64) (string, error) {
	var b strings.Builder
	port := e.replicas[0].httpsPort
	c := httpClient(pool, port)
	defer c.CloseIdleConnections()
	hot := m.hot[0]
	if kind, msg := getOnce(c, port, hot.cookie, hot.email); kind != "" { // fills the cache
		return "", fmt.Errorf("explain: %s: %s", kind, msg)
	}
	steps := []struct {
		what string
		do   func() (string, string)
	}{
		{"HTTP request, cookie verified <1s ago on this replica", func() (string, string) {
			return getOnce(c, port, hot.cookie, hot.email)
		}},
		{"HTTP request, session never seen by this replica", func() (string, string) {
			return getOnce(c, port, m.cold[0].cookie, m.cold[0].email)
		}},
		{"SSH session (connect, auth, exec, recording)", func() (string, string) {
			kind, err := sshOnce(e, 0, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9)}, m.keys[0], hostKeyCallback(e.hostCAs), size)
			if err != nil {
				return kind, err.Error()
			}
			return "", ""
		}},
	}
	b.WriteString("\nRedis commands of single operations on replica A (MONITOR; IDs masked):\n")
	for _, s := range steps {
		mon, err := startMonitor(e.redisAddr)
		if err != nil {
			return "", err
		}
		start := time.Now()
		kind, msg := s.do()
		took := time.Since(start)
		cmds := mon.stop()
		if kind != "" {
			return "", fmt.Errorf("explain %s: %s: %s", s.what, kind, msg)
		}
		fmt.Fprintf(&b, "  %s (%s): %d commands\n", s.what, round(took), len(cmds))
		for _, c := range cmds {
			fmt.Fprintf(&b, "    %s\n", c)
		}
	}
	return b.String(), nil
}
