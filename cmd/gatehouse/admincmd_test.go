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

func TestLockKeyAndTarget(t *testing.T) {
	const fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
	dir := filepath.Join(t.TempDir(), "data")
	yaml := targetYAML(t, dir)
	path := writeConfig(t, yaml)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		out  string // in stdout (code 0) or stderr
	}{
		{[]string{"lock", "--config", path, "--reason", "key leaked", "--key", fp}, 0, "locked key " + fp},
		{[]string{"lock", "--config", path, "--target", "prod-db"}, 0, "locked target prod-db"},
		{[]string{"lock", "--config", path, "--target", "nosuch"}, 1, `no target "nosuch" in the config`},
		{[]string{"lock", "--config", path, "--key", "SHA256:short"}, 1, "not a key fingerprint"},
		{[]string{"lock", "--config", path, "--key", fp, "ann@example.com"}, 2, "usage"},
		{[]string{"lock", "--config", path, "--key", fp, "--target", "prod-db"}, 2, "usage"},
		{[]string{"lock", "--config", path, "ann"}, 1, "not an email"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, &stdout, &stderr)
		got := stdout.String()
		if tt.code != 0 {
			got = stderr.String()
		}
		if code != tt.code || !strings.Contains(got, tt.out) {
			t.Errorf("gatehouse %v = %d, %q; want %d, %q", tt.args[2:], code, got, tt.code, tt.out)
		}
	}
	st, err := store.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"lock/key/" + fp, "lock/target/prod-db"} {
		if _, err := st.Get(context.Background(), key); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
	st.Close()
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{{"--key", fp}, {"--target", "prod-db"}} {
		if code := run(append([]string{"unlock", "--config", path}, args...), &stdout, &stderr); code != 0 {
			t.Fatalf("unlock %v = %d, %q", args, code, &stderr)
		}
	}
	cfg, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(auditTypes(t, cfg), "\n")
	for _, want := range []string{"lock key:" + fp + " by cli:", "lock target:prod-db by cli:", "unlock key:" + fp + " by cli:", "unlock target:prod-db by cli:"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit log lacks %q:\n%s", want, got)
		}
	}
}

// targetYAML is a valid config with SSO and one SSH target, prod-db.
func targetYAML(t *testing.T, dir string) string {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "oidc-secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return `public_url: https://gate.test
listen: {https: "127.0.0.1:0", admin: "127.0.0.1:0", ssh: "127.0.0.1:0"}
tls: {mode: self_signed}
data_dir: ` + dir + `
sso: {issuer: "https://idp.test", client_id: gh, client_secret_file: ` + secret + `}
targets:
  - name: prod-db
    address: 127.0.0.1:22
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    logins: [ubuntu]
    allow: {groups: [sre]}
`
}
