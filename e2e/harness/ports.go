// Package harness starts the real programs the end-to-end tests drive —
// the gatehouse binary, Dex, OpenSSH, Chromium, Redis — on loopback, on free
// ports picked at run time, and stops them when the test ends. A tool that
// is missing fails the test with the command that installs it; nothing is
// skipped silently.
package harness

import (
	"net"
	"strconv"
	"testing"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it
// listens on port 0, notes the port the kernel chose and closes the
// listener. Another process could take the port before the caller binds it;
// on a test machine that is rare enough.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("FreePort: listen: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("FreePort: close: %v", err)
	}
	return port
}

// FreeAddr returns "127.0.0.1:PORT" for a port from FreePort.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}
