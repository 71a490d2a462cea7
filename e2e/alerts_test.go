package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// TestAlerts is issue 8's alert check with the real binary, OpenSSH, sshd,
// Dex and Chromium: a burst of denials from one source address and a
// recording that fails `gatehouse recordings verify` raise alert events,
// and a webhook receiver that is down (503) while they happen, and while
// Gatehouse is killed with -9 and restarted, gets every audit line
// afterwards, alerts included, none lost, in chain order, byte for byte as
// in the audit file. Syslog (a local unix datagram socket) gets the alerts
// at severity warning.
func TestAlerts(t *testing.T) {
	for _, tool := range []string{"ssh", "ssh-keygen"} {
		harness.RequireTool(t, tool)
	}
	secret := "hook-secret-" + randomName()
	hook := newHookReceiver(secret)
	srv := httptest.NewServer(hook) // loopback, free port; stopped below
	t.Cleanup(srv.Close)
	secretFile := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	syslog := startSyslogListener(t)

	ca := harness.NewCA(t)
	port := strconv.Itoa(harness.FreePort(t))
	portal := "https://gate.test:" + port
	dex := harness.StartDex(t, harness.DexOptions{
		CA:    ca,
		Users: []harness.DexUser{{Email: sshEmail, Password: sshPassword, Groups: []string{"sre"}}},
		Clients: []harness.DexClient{{ID: "gatehouse", Secret: "gatehouse-secret-for-tests",
			RedirectURIs: []string{portal + "/auth/callback"}}},
	})
	target := harness.StartSSHD(t, harness.SSHDOptions{TrustedUserCAKeys: randomKeyLine(t)})
	cert, key := ca.Issue(t, "gate.test")
	g := harness.StartGatehouseYAML(t, fmt.Sprintf(`public_url: %s
listen:
  https: "127.0.0.1:%s"
  ssh: "127.0.0.1:0"
tls: {mode: files, cert_file: %s, key_file: %s}
data_dir: /placeholder
sso:
  issuer: %s
  client_id: gatehouse
  client_secret_file: %s
  ca_roots: [%s]
targets:
  - name: web
    address: %q
    host_key: %q
    logins: [%s]
    allow: {groups: [sre]}
audit:
  webhook: {url: %q, secret_file: %s}
  alerts: {denials: 3, denial_window: 1m}
  syslog: {network: unixgram, address: %s, tag: gatehouse-e2e}
`, portal, port, cert, key, dex.Issuer, dex.SecretFile(t, "gatehouse"), dex.CAFile,
		target.Addr, target.HostKeyLine, target.User, srv.URL+"/hook", secretFile, syslog.path))
	auditFile := filepath.Join(g.DataDir, "audit", "audit.log")
	e := newSSHEnvFor(t, g, target)
	e.tab = harness.NewBrowser(t, harness.BrowserOptions{CA: ca}).NewTab(t)
	p := []string{"-p", e.sshPort}

	var rec recListed
	step(t, "a recorded session, delivered to the receiver", func() {
		if r, code := e.run(t, true, "", "ssh", append(p, e.dest(e.login, "web"), "true")...); code != 0 {
			t.Fatalf("first contact: exit %d, stderr %q", code, r.stderr.String())
		}
		rec = findRecording(t, g, func(r recListed) bool { return r.User == sshEmail && !r.End.IsZero() })
		waitDelivered(t, hook, auditFile, "")
	})

	hook.setDown(true)
	var wantAlerts []string
	step(t, "a denial burst from one source while the receiver is down", func() {
		// From 127.0.0.2: the browser's and the first contact's traffic
		// came from 127.0.0.1, so this source starts with a clean count.
		for range 3 {
			r, code := e.run(t, false, "", "ssh", append(p, "-b", "127.0.0.2", "-o", "BatchMode=yes", e.dest(e.login, "nosuch"), "true")...)
			if code != 255 || !strings.Contains(r.stderr.String(), "unknown target") {
				t.Fatalf("unknown target: exit %d, stderr %q", code, r.stderr.String())
			}
		}
		wantAlerts = append(wantAlerts, "denials source 127.0.0.2 3 1m0s")
	})

	step(t, "a tampered recording fails verify while the receiver is down", func() {
		file := filepath.Join(g.DataDir, "recordings", rec.ID+".ghrec")
		b := []byte(readFile(t, file))
		b[len(b)-100] ^= 1
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		r := g.Run(t, "recordings", "verify", rec.ID)
		if r.ExitCode != 1 || !strings.Contains(r.Stdout, "FAILED") {
			t.Fatalf("verify of a changed recording: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
		}
		wantAlerts = append(wantAlerts, "recording resource recording:"+rec.ID+" 1 10m0s")
	})

	step(t, "the receiver comes back and gets every line in chain order", func() {
		// The alerts are in the file, and the receiver refused them.
		waitAudit(t, g, `"type":"alert".*"rule":"recording"`)
		// Down long enough for several retries (0.5s, 1s, 2s apart).
		for deadline := time.Now().Add(10 * time.Second); hook.refusedCount() < 3 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		if n := hook.refusedCount(); n < 3 {
			t.Fatalf("the receiver refused %d posts while down, want at least 3 retries", n)
		}
		// What is queued survives a crash: delivery resumes from the
		// durable cursor after a restart.
		g.Kill9AndRestart(t)
		hook.setDown(false)
		lines := waitDelivered(t, hook, auditFile, `"rule":"recording"`)
		var got []string
		for _, l := range lines {
			var ev audit.Event
			if err := json.Unmarshal(l, &ev); err != nil {
				t.Fatalf("delivered line %q: %v", l, err)
			}
			if ev.Type == audit.AlertType {
				d := ev.Details
				got = append(got, d["rule"]+" "+d["key"]+" "+d["value"]+" "+d["count"]+" "+d["window"])
			}
		}
		if strings.Join(got, "\n") != strings.Join(wantAlerts, "\n") {
			t.Errorf("alerts delivered:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantAlerts, "\n"))
		}
		t.Logf("%d lines delivered, %d posts refused while down", len(lines), hook.refusedCount())
	})

	step(t, "syslog got the alerts at severity warning", func() {
		// Syslog is best effort (a kill -9 may lose what was queued), so
		// only the alerts, sent seconds before the kill, are required.
		var got []string
		for _, m := range syslog.messages() {
			if strings.HasPrefix(m, "<84>") && strings.Contains(m, " gatehouse-e2e[") {
				_, line, _ := strings.Cut(m, "]: ")
				var ev audit.Event
				if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Type != audit.AlertType {
					t.Errorf("warning message %q is not an alert event (%v)", m, err)
					continue
				}
				got = append(got, ev.Details["rule"])
			}
		}
		if strings.Join(got, " ") != "denials recording" {
			t.Errorf("syslog alerts = %q, want denials and recording", got)
		}
	})
}

// syslogListener is a local syslog socket (unix datagrams) that keeps
// what it receives.
type syslogListener struct {
	path string
	mu   sync.Mutex // guards msgs
	msgs []string
}

func startSyslogListener(t *testing.T) *syslogListener {
	t.Helper()
	// A short directory: socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "gh-syslog-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l := &syslogListener{path: filepath.Join(dir, "log")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: l.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			l.mu.Lock()
			l.msgs = append(l.msgs, strings.TrimSuffix(string(buf[:n]), "\n"))
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *syslogListener) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

// waitDelivered waits until the receiver holds every line of the audit
// file (and the file has a line containing want), then checks that what
// it got is the file, byte for byte and in order (a batch sent again is
// allowed: delivery is at least once), and returns the lines.
func waitDelivered(t *testing.T, hook *hookReceiver, auditFile, want string) [][]byte {
	t.Helper()
	var file, got [][]byte
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		file = bytes.SplitAfter([]byte(readFile(t, auditFile)), []byte("\n"))
		file = file[:len(file)-1] // after the last newline
		got = hook.delivered(t)
		if len(got) >= len(file) && bytes.Contains(bytes.Join(file, nil), []byte(want)) {
			break
		}
	}
	if len(got) < len(file) {
		t.Fatalf("receiver has %d of %d audit lines", len(got), len(file))
	}
	for i, l := range file {
		if !bytes.Equal(got[i], bytes.TrimSuffix(l, []byte("\n"))) {
			t.Fatalf("delivered line %d = %q, want %q", i+1, got[i], l)
		}
	}
	if n := hook.badSignatures(); n != 0 {
		t.Errorf("%d posts had a bad signature", n)
	}
	return got[:len(file)]
}

// hookReceiver is a webhook receiver: it checks each post's HMAC, and
// answers 503 while down.
type hookReceiver struct {
	secret []byte
	down   atomic.Bool

	mu      sync.Mutex // guards the fields below
	lines   [][]byte   // accepted lines, as they arrived
	refused int        // posts answered 503
	badSig  int
}

func newHookReceiver(secret string) *hookReceiver { return &hookReceiver{secret: []byte(secret)} }

func (h *hookReceiver) setDown(down bool) { h.down.Store(down) }

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	mac := hmac.New(sha256.New, h.secret)
	mac.Write(body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !hmac.Equal([]byte(r.Header.Get(audit.SignatureHeader)), []byte("sha256="+hex.EncodeToString(mac.Sum(nil)))) {
		h.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if h.down.Load() {
		h.refused++
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	for l := range bytes.Lines(body) {
		h.lines = append(h.lines, bytes.TrimSuffix(l, []byte("\n")))
	}
}

// delivered returns the accepted lines in chain order, dropping lines sent
// again (a seq at or below the last one, with the same bytes); any other
// disorder fails the test.
func (h *hookReceiver) delivered(t *testing.T) [][]byte {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var out [][]byte
	for _, l := range h.lines {
		var ev audit.Event
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatalf("receiver got %q: %v", l, err)
		}
		switch {
		case ev.Seq == uint64(len(out))+1:
			out = append(out, l)
		case ev.Seq >= 1 && ev.Seq <= uint64(len(out)) && bytes.Equal(out[ev.Seq-1], l):
			// A batch sent again.
		default:
			t.Fatalf("receiver got seq %d after %d lines: lost or reordered", ev.Seq, len(out))
		}
	}
	return out
}

func (h *hookReceiver) refusedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refused
}

func (h *hookReceiver) badSignatures() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.badSig
}
