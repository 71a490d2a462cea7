package sshgw

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/recording"
)

// sessionIDOf returns the session ID the target's last certificate names.
func (e *env) sessionIDOf(t *testing.T) string {
	t.Helper()
	cert := e.target.lastCert()
	if cert == nil {
		t.Fatal("no certificate reached the target")
	}
	return cert.KeyId[strings.LastIndex(cert.KeyId, ":")+1:]
}

func TestRecordExec(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	cl := e.dialBound(t, "ubuntu@prod")
	if out, _, code := run(t, cl, "echo hello-recorded", ""); out != "hello-recorded\n" || code != 0 {
		t.Fatalf("echo = %q, %d", out, code)
	}
	if _, errOut, code := run(t, cl, "stderr oops-on-stderr", ""); errOut != "oops-on-stderr\n" || code != 0 {
		t.Fatalf("stderr = %q, %d", errOut, code)
	}
	if _, _, code := run(t, cl, "exit 3", ""); code != 3 {
		t.Fatalf("exit 3 = %d", code)
	}
	recs := e.rec.waitClosed(t, 3)
	sid := e.sessionIDOf(t)
	for i, want := range []struct{ cmd, out, status string }{
		// No pty: recorded with "\r\n", as the person's terminal showed it.
		{"echo hello-recorded", "hello-recorded\r\n", "0"},
		{"stderr oops-on-stderr", "oops-on-stderr\r\n", "0"},
		{"exit 3", "", "3"},
	} {
		r := recs[i]
		m := r.meta
		if m.Kind != recording.KindExec || m.Command != want.cmd || m.User != alice.Email || m.Target != "prod" ||
			m.Login != "ubuntu" || m.SessionID != sid || m.Source == "" || m.Start.IsZero() {
			t.Errorf("recording %d meta = %+v", i, m)
		}
		if got := r.output(); got != want.out {
			t.Errorf("recording %d output = %q, want %q", i, got, want.out)
		}
		types := []string{}
		for _, ev := range r.events {
			types = append(types, ev.Type)
		}
		if strings.Join(types, ",") != "approval,exec,exit,end" {
			t.Errorf("recording %d events = %v", i, types)
		}
		if ex := r.eventsOf(recording.EventExec); len(ex) != 1 || ex[0].Fields["command"] != want.cmd {
			t.Errorf("recording %d exec event = %+v", i, ex)
		}
		if ex := r.eventsOf(recording.EventExit); len(ex) != 1 || ex[0].Fields["status"] != want.status {
			t.Errorf("recording %d exit event = %+v", i, ex)
		}
		if ap := r.eventsOf(recording.EventApproval); len(ap) != 1 || ap[0].Fields["method"] != "publickey" || ap[0].Fields["key"] == "" {
			t.Errorf("recording %d approval event = %+v", i, ap)
		}
		if end := r.eventsOf(recording.EventEnd); len(end) != 1 || end[0].Fields["reason"] != "normal" || r.reason != "normal" {
			t.Errorf("recording %d end = %+v, closed with %q", i, end, r.reason)
		}
	}
}

// TestRecordNeverInput: what the client types is not recorded, only what
// the target sends back.
func TestRecordNeverInput(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	cl := e.dialBound(t, "ubuntu@prod")
	const secret = "hunter2-typed-with-echo-off"
	if out, _, _ := run(t, cl, "read", secret); out != "read 27 bytes\n" {
		t.Fatalf("read = %q", out)
	}
	r := e.rec.waitClosed(t, 1)[0]
	if got := r.output(); got != "read 27 bytes\r\n" {
		t.Errorf("output = %q", got)
	}
	if strings.Contains(r.String(), secret) {
		t.Errorf("input reached the recording: %s", r)
	}
}

func TestRecordShell(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	cl := e.dialBound(t, "ubuntu@prod")
	s, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestPty("xterm", 40, 100, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	in, _ := s.StdinPipe()
	outp, _ := s.StdoutPipe()
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "ls\n")
	line := make([]byte, len("echo: ls\n"))
	if _, err := io.ReadFull(outp, line); err != nil || string(line) != "echo: ls\n" {
		t.Fatalf("shell answered %q, %v", line, err)
	}
	if err := s.WindowChange(50, 120); err != nil {
		t.Fatal(err)
	}
	in.Close()
	_ = s.Wait()
	r := e.rec.waitClosed(t, 1)[0]
	if r.meta.Kind != recording.KindShell || r.meta.Width != 100 || r.meta.Height != 40 {
		t.Errorf("meta = %+v", r.meta)
	}
	if r.output() != "echo: ls\n" {
		t.Errorf("output = %q", r.output())
	}
	if len(r.resizes) != 1 || r.resizes[0] != [2]int{120, 50} {
		t.Errorf("resizes = %v", r.resizes)
	}
}

func TestRecordingStartFailsRefusesSession(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	e.rec.startErr = errors.New("disk full")
	cl := e.dialBound(t, "ubuntu@prod")
	out, errOut, code := run(t, cl, "echo should-not-run", "")
	if out != "" || code != 1 || !strings.Contains(errOut, msgRecordingFailed) {
		t.Errorf("run = %q, %q, %d; want refused with %q", out, errOut, code, msgRecordingFailed)
	}
	if e.target.saw("request exec") {
		t.Error("the target ran a command that could not be recorded")
	}
	ev := e.audit.waitFor(t, "ssh.recording", func(ev audit.Event) bool { return ev.Type == "ssh.recording" })
	if ev.Decision != audit.Deny || !strings.Contains(ev.Reason, "disk full") || ev.Actor != alice.Email {
		t.Errorf("audit = %+v", ev)
	}
}

// TestRecordingFailsMidSession: when the recording cannot be written any
// more, the session ends with a message and no byte reaches the client
// unrecorded.
func TestRecordingFailsMidSession(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	e.rec.failAfter = 100 << 10
	cl := e.dialBound(t, "ubuntu@prod")
	big := make([]byte, 1<<20)
	_, _ = rand.Read(big)
	out, errOut, code := run(t, cl, "cat", string(big))
	if code == 0 || len(out) >= len(big) || !strings.Contains(errOut, msgRecordingFailed) {
		t.Fatalf("cat: %d bytes out, stderr %q, status %d; want cut short with %q", len(out), errOut, code, msgRecordingFailed)
	}
	r := e.rec.waitClosed(t, 1)[0]
	rec := r.output()
	// No pty: the recording holds the client's bytes with "\r\n" line ends.
	if shown := toCRLF(nil, []byte(out), false); !bytes.HasPrefix([]byte(rec), shown) {
		t.Errorf("client got %d bytes (%d as shown), recording holds %d: the client got bytes not recorded", len(out), len(shown), len(rec))
	}
	if end := r.eventsOf(recording.EventEnd); len(end) != 1 || end[0].Fields["reason"] != "recording failed" {
		t.Errorf("end events = %+v", end)
	}
	e.audit.waitFor(t, "ssh.recording", func(ev audit.Event) bool {
		return ev.Type == "ssh.recording" && strings.Contains(ev.Reason, "no space left")
	})
}

func TestRecordOff(t *testing.T) {
	e := newEnv(t, Limits{}, func(c *config.Config) { c.Targets[0].Record = config.RecordOff })
	cl := e.dialBound(t, "ubuntu@prod")
	if out, _, _ := run(t, cl, "echo unrecorded", ""); out != "unrecorded\n" {
		t.Fatalf("echo = %q", out)
	}
	if c, err := cl.Dial("tcp", e.echoAddr); err != nil {
		t.Fatalf("forward: %v", err)
	} else {
		c.Close()
	}
	cl.Close()
	time.Sleep(50 * time.Millisecond) // let anything that would start a recording run
	if recs := e.rec.all(); len(recs) != 0 {
		t.Errorf("record: off made recordings: %v", recs)
	}
}

// TestNoRecorderFailsClosed: a gateway without a recorder refuses a config
// whose targets require recording, at start and at reload.
func TestNoRecorderFailsClosed(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	cfg := *e.cfg
	_, err := New(Config{Cfg: &cfg, DataDir: t.TempDir(), Secrets: e.kr, Store: e.store, Approvals: e.approvals, Keys: e.binds,
		Locks: e.locks, Audit: e.audit})
	if err == nil || !strings.Contains(err.Error(), "requires recording") {
		t.Errorf("New without a recorder = %v", err)
	}
	off := cfg
	off.Targets = nil
	for _, tg := range cfg.Targets {
		tg.Record = config.RecordOff
		off.Targets = append(off.Targets, tg)
	}
	s, err := New(Config{Cfg: &off, DataDir: t.TempDir(), Secrets: e.kr, Store: e.store, Approvals: e.approvals, Keys: e.binds,
		Locks: e.locks, Audit: e.audit})
	if err != nil {
		t.Fatalf("New without a recorder, every target off: %v", err)
	}
	if err := s.CheckReload(&cfg); err == nil || !strings.Contains(err.Error(), "requires recording") {
		t.Errorf("reload to required without a recorder = %v", err)
	}
}

func TestRecordForwards(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	cl := e.dialBound(t, "ubuntu@prod")
	for _, msg := range []string{"ping", "longer message"} {
		c, err := cl.Dial("tcp", e.echoAddr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	// One recording per connection, sealed when the connection ends.
	deadline := time.Now().Add(5 * time.Second)
	for len(e.rec.all()) == 0 || len(e.rec.all()[0].eventsOf(recording.EventForwardClose)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("forward closes not recorded: %v", e.rec.all())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if e.rec.all()[0].isClosed() {
		t.Error("forward recording sealed while the connection is open")
	}
	cl.Close()
	r := e.rec.waitClosed(t, 1)[0]
	if len(e.rec.all()) != 1 || r.meta.Kind != recording.KindForward || r.meta.User != alice.Email {
		t.Fatalf("recordings = %v", e.rec.all())
	}
	opens, closes := r.eventsOf(recording.EventForwardOpen), r.eventsOf(recording.EventForwardClose)
	if len(opens) != 2 || opens[0].Fields["destination"] != e.echoAddr {
		t.Errorf("opens = %+v", opens)
	}
	if len(closes) != 2 || closes[1].Fields["bytes_out"] != "14" || closes[1].Fields["bytes_in"] != "14" {
		t.Errorf("closes = %+v", closes)
	}
	if r.output() != "" {
		t.Errorf("forwarded bytes recorded as output: %q", r.output())
	}
}

func TestRecordForwardRefusedWhenRecordingFails(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	e.rec.startErr = errors.New("disk full")
	cl := e.dialBound(t, "ubuntu@prod")
	if c, err := cl.Dial("tcp", e.echoAddr); err == nil {
		c.Close()
		t.Fatal("forward that cannot be recorded accepted")
	}
	e.audit.waitFor(t, "ssh.recording", func(ev audit.Event) bool { return ev.Type == "ssh.recording" && ev.Action == "forward" })
}

func TestRecordApprovalEvent(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	key := newSigner(t)
	ids := e.approveNext(fresh(alice))
	cl, err := e.dial(&client{user: "ubuntu@every", key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	apID := <-ids
	run(t, cl, "echo approved", "")
	r := e.rec.waitClosed(t, 1)[0]
	ap := r.eventsOf(recording.EventApproval)
	if len(ap) != 1 || ap[0].Fields["method"] != "keyboard-interactive" || ap[0].Fields["approval"] != apID {
		t.Errorf("approval event = %+v, want approval %s", ap, apID)
	}
}
