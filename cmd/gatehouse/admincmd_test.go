package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/store"
)

// auditTypes returns the type and actor of every event in the audit log.
func auditTypes(t *testing.T, cfg *config.Config) []string {
	t.Helper()
	b, err := os.ReadFile(auditPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var ev audit.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.Type+" "+ev.Resource+" by "+ev.Actor)
	}
	return got
}

func TestAdminCommandsWithoutServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := writeConfig(t, validYAML(dir))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"enroll-link", "--config", path, "Ann@Example.com"}, &stdout, &stderr); code != 0 {
		t.Fatalf("enroll-link = %d, stderr %q", code, &stderr)
	}
	if !strings.HasPrefix(stdout.String(), "https://gate.test/enroll/") {
		t.Errorf("enroll-link printed %q, want a https://gate.test/enroll/ link", &stdout)
	}
	stdout.Reset()
	if code := run([]string{"lock", "--config", path, "--reason", "laptop stolen", "ann@example.com"}, &stdout, &stderr); code != 0 {
		t.Fatalf("lock = %d, stderr %q", code, &stderr)
	}
	cfg, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(context.Background(), "lock/ann@example.com"); err != nil {
		t.Errorf("lock record: %v", err)
	}
	st.Close()
	if code := run([]string{"unlock", "--config", path, "ann@example.com"}, &stdout, &stderr); code != 0 {
		t.Fatalf("unlock = %d, stderr %q", code, &stderr)
	}
	got := strings.Join(auditTypes(t, cfg), "\n")
	for _, want := range []string{"invite", "lock user:ann@example.com by cli:", "unlock user:ann@example.com by cli:"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit log lacks %q:\n%s", want, got)
		}
	}
	if n, err := audit.VerifyFile(auditPath(cfg)); err != nil || n == 0 {
		t.Errorf("audit verify = %d, %v", n, err)
	}
}

// TestAdminCommandsThroughServer runs a command while a server holds the
// store: it must go over the control socket.
func TestAdminCommandsThroughServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := writeConfig(t, validYAML(dir))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	al, err := openAudit(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	id, err := newIdentity(context.Background(), deps{cfg: cfg, store: st, audit: al})
	if err != nil {
		t.Fatal(err)
	}
	srv, ln, err := serveControl(cfg, id, nil, al, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		srv.Shutdown(context.Background())
		<-done
	}()

	var stdout, stderr bytes.Buffer
	if code := run([]string{"lock", "--config", path, "bob@example.com"}, &stdout, &stderr); code != 0 {
		t.Fatalf("lock through the server = %d, stderr %q", code, &stderr)
	}
	if _, err := st.Get(context.Background(), "lock/bob@example.com"); err != nil {
		t.Errorf("the server's store has no lock: %v", err)
	}
	if code := run([]string{"lock", "--config", path}, &stdout, &stderr); code != 2 {
		t.Errorf("lock without USER = %d, want 2", code)
	}
}

// TestAuditAlertsOnDenialBurst checks that serve's audit log is wired with
// the alerter: a burst of denials from one source raises an alert event.
func TestAuditAlertsOnDenialBurst(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load([]byte(validYAML(dir)))
	if err != nil {
		t.Fatal(err)
	}
	al, err := openAudit(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := al.Log(context.Background(), audit.Event{Type: "ssh.auth", Decision: audit.Deny, Source: "192.0.2.7:40000"}); err != nil {
			t.Fatal(err)
		}
	}
	al.Close()
	got := strings.Join(auditTypes(t, cfg), "\n")
	if !strings.Contains(got, "alert") {
		t.Errorf("no alert after 10 denials from one source:\n%s", got)
	}
}
