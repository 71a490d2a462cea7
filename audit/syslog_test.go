package audit

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Syslog priorities as log/syslog writes them: facility authpriv (10).
const (
	prioInfo    = "<86>"
	prioWarning = "<84>"
)

// logDenials writes three denials from one source (an alert with the
// threshold of 3) and one allow, then closes l so that the sink drains.
func logDenials(t *testing.T, l *Log) {
	for i := range 3 {
		mustLog(t, l, Event{Type: "ssh.auth", Decision: Deny, Source: fmt.Sprintf("192.0.2.7:%d", 4000+i), Reason: "unknown key"})
	}
	mustLog(t, l, Event{Type: "ssh.auth", Decision: Allow, Source: "192.0.2.8:1"})
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
}

// checkSyslog wants every audit line, in order, the alert at warning.
func checkSyslog(t *testing.T, msgs []string) {
	t.Helper()
	if len(msgs) != 5 {
		t.Fatalf("syslog got %d messages, want 5:\n%s", len(msgs), strings.Join(msgs, "\n"))
	}
	for i, m := range msgs {
		wantPrio, wantType := prioInfo, `"type":"ssh.auth"`
		if i == 3 {
			wantPrio, wantType = prioWarning, `"type":"alert"`
		}
		if !strings.HasPrefix(m, wantPrio) || !strings.Contains(m, " gatehouse-test[") ||
			!strings.Contains(m, wantType) || !strings.Contains(m, fmt.Sprintf(`"seq":%d,`, i+1)) {
			t.Errorf("syslog message %d = %q, want %s, tag gatehouse-test, %s, seq %d", i, m, wantPrio, wantType, i+1)
		}
	}
}

func alertingLog(t *testing.T, network, addr string) *Log {
	return openLog(t, filepath.Join(t.TempDir(), "audit.log"), Options{
		Alerter: NewAlerter(AlertOptions{Denials: 3, DenialWindow: time.Minute}),
		Syslog:  &SyslogOptions{Network: network, Address: addr, Tag: "gatehouse-test"},
	})
}

func TestSyslogUnixgram(t *testing.T) {
	// A short path: unix socket names are limited to about 100 bytes.
	path := filepath.Join(t.TempDir(), "log.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Skipf("no unix datagram sockets here: %v", err)
	}
	defer conn.Close()
	logDenials(t, alertingLog(t, "unixgram", path))
	var msgs []string
	buf := make([]byte, 64<<10)
	for len(msgs) < 5 {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(msgs), err)
		}
		msgs = append(msgs, strings.TrimSuffix(string(buf[:n]), "\n"))
	}
	checkSyslog(t, msgs)
}

func TestSyslogTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []string, 1)
	go func() {
		var msgs []string
		defer func() { got <- msgs }()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		sc := bufio.NewScanner(c)
		for len(msgs) < 5 && sc.Scan() {
			msgs = append(msgs, sc.Text())
		}
	}()
	logDenials(t, alertingLog(t, "tcp", ln.Addr().String()))
	checkSyslog(t, <-got)
}

// A syslog server that is not there costs the audit log nothing: events
// are still written and Close returns.
func TestSyslogDownDoesNotBlock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path, Options{Syslog: &SyslogOptions{Network: "tcp", Address: addr, Tag: "gatehouse-test", Queue: 2}})
	for range 10 {
		mustLog(t, l, Event{Type: "ssh.auth", Decision: Deny, Source: "192.0.2.7:1"})
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if n, err := VerifyFile(path); err != nil || n != 10 {
		t.Errorf("VerifyFile = %d, %v; want 10 lines", n, err)
	}
}
