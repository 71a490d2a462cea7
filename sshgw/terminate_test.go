package sshgw

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/recording"
)

// openShell starts a shell on cl and returns its stderr so far, read in
// the background, and a channel closed when the session ends.
func openShell(t *testing.T, e *env, user string) (sid string, stderr func() string, ended chan struct{}) {
	t.Helper()
	cl := e.dialBound(t, user)
	s, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var errb syncBuffer
	s.Stderr = &errb
	in, _ := s.StdinPipe()
	t.Cleanup(func() { in.Close() })
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	ended = make(chan struct{})
	go func() { _ = s.Wait(); close(ended) }()
	// The recording exists once the shell started.
	deadline := time.Now().Add(5 * time.Second)
	for len(e.rec.all()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no recording started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return e.rec.all()[0].meta.SessionID, errb.String, ended
}

func TestTerminate(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	sid, stderr, ended := openShell(t, e, "ubuntu@prod")
	if sid == "" {
		t.Fatal("recording has no session ID")
	}
	if ok, err := e.srv.Terminate(context.Background(), "nosuchsession", "rev@example.com"); ok || err != nil {
		t.Errorf("Terminate(unknown) = %v, %v; want false, nil (sent to other replicas)", ok, err)
	}
	start := time.Now()
	ok, err := e.srv.Terminate(context.Background(), sid, "rev@example.com")
	if !ok || err != nil {
		t.Fatalf("Terminate = %v, %v", ok, err)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("session still open after Terminate")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("session ended %v after Terminate, want within a second", d)
	}
	if got := stderr(); !strings.Contains(got, "terminated by rev@example.com") {
		t.Errorf("client was told %q", got)
	}
	ev := e.audit.waitFor(t, "ssh.end", func(ev audit.Event) bool { return ev.Type == "ssh.end" })
	if ev.Reason != "terminated by rev@example.com" || ev.Session != sid || ev.Actor != alice.Email {
		t.Errorf("audit = %+v", ev)
	}
	r := e.rec.waitClosed(t, 1)[0]
	end := r.eventsOf(recording.EventEnd)
	if len(end) != 1 || end[0].Fields["reason"] != "terminated by rev@example.com" || end[0].Fields["by"] != "rev@example.com" {
		t.Errorf("end events = %+v", end)
	}
	if r.reason != "terminated by rev@example.com" {
		t.Errorf("recording closed with %q", r.reason)
	}
	if _, err := e.srv.Terminate(context.Background(), sid, ""); err == nil {
		t.Error("Terminate without who accepted")
	}
}

// TestTerminateOtherReplica: a termination asked on one replica ends the
// session on the replica that holds it, through the store's pub/sub.
func TestTerminateOtherReplica(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	// A second replica on the same store, with its own listener.
	cfg := *e.cfg
	other, err := New(Config{Cfg: &cfg, Secrets: e.kr, Store: e.store, Approvals: e.approvals, Keys: e.binds, Locks: e.locks,
		Audit: e.audit, Logger: testLogger(t), Recorder: e.rec})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = other.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = other.Shutdown(ctx)
	})
	// Connect to the other replica (same data dir: same host CA).
	oe := *e
	oe.addr, oe.srv = ln.Addr().String(), other
	sid, stderr, ended := openShell(t, &oe, "ubuntu@prod")
	// Ask until the other replica's subscription is surely in place: a
	// message published before it would be lost, as on Redis.
	deadline := time.After(5 * time.Second)
	for done := false; !done; {
		ok, err := e.srv.Terminate(context.Background(), sid, "rev@example.com")
		if ok || err != nil {
			t.Fatalf("Terminate on the replica without the session = %v, %v; want false, nil", ok, err)
		}
		select {
		case <-ended:
			done = true
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("session on the other replica still open")
		}
	}
	if got := stderr(); !strings.Contains(got, "terminated by rev@example.com") {
		t.Errorf("client was told %q", got)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
