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
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/store"
)

// recFixture is a data dir with a config and two recordings, one of a
// person under legal hold.
type recFixture struct {
	path, dir string
	cfg       *config.Config
	ann, held string // recording IDs
}

func newRecFixture(t *testing.T) *recFixture {
	t.Helper()
	f := &recFixture{dir: filepath.Join(t.TempDir(), "data")}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(f.dir, 0o700))
	f.path = writeConfig(t, validYAML(f.dir)+"recording: {legal_hold: [held@example.com]}\n")
	var err error
	f.cfg, err = config.LoadFile(f.path)
	must(err)
	st, err := store.OpenBolt(filepath.Join(f.dir, "state.db"))
	must(err)
	defer st.Close()
	al, err := openAudit(f.cfg, nil, nil)
	must(err)
	defer al.Close()
	rec, err := recording.New(recorderConfig(f.cfg, st, testKeyring(t, f.cfg), al, nil, "test"))
	must(err)
	record := func(user, out string) string {
		w, err := rec.Start(context.Background(), recording.Meta{User: user, Target: "prod", Login: "ubuntu", Kind: recording.KindShell})
		must(err)
		must(w.Output([]byte(out)))
		must(w.Close("normal"))
		return w.ID()
	}
	f.ann = record("ann@example.com", "ann-was-here\r\n")
	f.held = record("held@example.com", "held-output\r\n")
	return f
}

func runCLI(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != want {
		t.Fatalf("gatehouse %s = %d, want %d; stdout %q stderr %q", strings.Join(args, " "), code, want, &stdout, &stderr)
	}
	return stdout.String(), stderr.String()
}

func TestRecordingsCommandsWithoutServer(t *testing.T) {
	f := newRecFixture(t)
	out, _ := runCLI(t, 0, "recordings", "list", "--config", f.path, "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("list --json printed %d lines, want 2:\n%s", len(lines), out)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		for _, k := range []string{"id", "user", "target", "login", "start", "end"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %q lacks %q", l, k)
			}
		}
	}
	out, _ = runCLI(t, 0, "recordings", "list", "--config", f.path, "--query", "ann-was-here", "--since", "1h")
	if !strings.Contains(out, f.ann) || strings.Contains(out, f.held) || !strings.Contains(out, "ann@example.com") {
		t.Errorf("list --query printed:\n%s", out)
	}
	out, _ = runCLI(t, 0, "recordings", "verify", "--config", f.path, f.ann)
	if !strings.Contains(out, "OK") {
		t.Errorf("verify printed %q", out)
	}
	castPath := filepath.Join(t.TempDir(), "ann.cast")
	runCLI(t, 0, "recordings", "export", "--config", f.path, "-o", castPath, f.ann)
	cast, err := os.ReadFile(castPath)
	if err != nil || !strings.HasPrefix(string(cast), `{"version":2`) || !strings.Contains(string(cast), "ann-was-here") {
		t.Errorf("export wrote %q, %v", cast, err)
	}
	if fi, err := os.Stat(castPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("exported file mode %v, %v; want 0600", fi.Mode(), err)
	}
	out, _ = runCLI(t, 0, "recordings", "play", "--config", f.path, "--no-wait", f.ann)
	if out != "ann-was-here\r\n" {
		t.Errorf("play printed %q", out)
	}
	leftovers, _ := filepath.Glob(filepath.Join(f.dir, ".cast-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary casts left in data_dir: %v", leftovers)
	}

	// One changed byte: verify fails and names the problem.
	file := filepath.Join(f.dir, "recordings", f.ann+".ghrec")
	b, _ := os.ReadFile(file)
	b[len(b)-100] ^= 1
	os.WriteFile(file, b, 0o600)
	out, _ = runCLI(t, 1, "recordings", "verify", "--config", f.path, f.ann)
	if !strings.Contains(out, "FAILED") || !strings.Contains(out, "  - ") {
		t.Errorf("verify of a changed file printed %q", out)
	}

	out, _ = runCLI(t, 0, "purge", "--config", f.path, "ann@example.com")
	if !strings.Contains(out, "recordings: 1 deleted: "+f.ann) || !strings.Contains(out, "SSH key bindings: 0 removed") {
		t.Errorf("purge printed %q", out)
	}
	out, _ = runCLI(t, 0, "purge", "--config", f.path, "held@example.com")
	if !strings.Contains(out, "under legal hold") {
		t.Errorf("purge of a held person printed %q", out)
	}
	out, _ = runCLI(t, 0, "recordings", "list", "--config", f.path, "--json")
	if strings.Contains(out, f.ann) || !strings.Contains(out, f.held) {
		t.Errorf("after purge, list printed:\n%s", out)
	}
	got := strings.Join(auditTypes(t, f.cfg), "\n")
	for _, want := range []string{"recording.seal", "recording.export target:prod by cli:", "recording.play target:prod by cli:", "recording.delete", "purge  by cli:"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit log lacks %q:\n%s", want, got)
		}
	}
	raw, _ := os.ReadFile(auditPath(f.cfg))
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.Contains(l, `"type":"purge"`) && strings.Contains(l, "ann@example.com") {
			t.Errorf("the purge event names the person: %s", l)
		}
	}
	if n, err := audit.VerifyFile(auditPath(f.cfg)); err != nil || n == 0 {
		t.Errorf("audit verify = %d, %v", n, err)
	}
	runCLI(t, 2, "recordings", "verify", "--config", f.path)
	runCLI(t, 2, "recordings", "frobnicate")
}

// TestRecordingsThroughServer: while a server holds the store, the
// commands go over the control socket (serve must offer recordingOps).
func TestRecordingsThroughServer(t *testing.T) {
	f := newRecFixture(t)
	st, err := store.OpenBolt(filepath.Join(f.dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	al, err := openAudit(f.cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	id, err := newIdentity(context.Background(), deps{cfg: f.cfg, store: st, audit: al})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := recording.New(recorderConfig(f.cfg, st, testKeyring(t, f.cfg), al, nil, "test"))
	if err != nil {
		t.Fatal(err)
	}
	srv, ln, err := serveControl(f.cfg, id, rec, al, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		srv.Shutdown(context.Background())
		<-done
	}()
	out, _ := runCLI(t, 0, "recordings", "list", "--config", f.path, "--user", "ann@example.com", "--json")
	if !strings.Contains(out, f.ann) || strings.Contains(out, f.held) {
		t.Errorf("list through the server printed:\n%s", out)
	}
	out, _ = runCLI(t, 0, "recordings", "play", "--config", f.path, "--no-wait", f.held)
	if out != "held-output\r\n" {
		t.Errorf("play through the server printed %q", out)
	}
	runCLI(t, 0, "recordings", "verify", "--config", f.path, f.held)
	delete(srv.Ops, opRecVerify)
	_, errOut := runCLI(t, 1, "recordings", "verify", "--config", f.path, f.held)
	if !strings.Contains(errOut, "does not offer recordings.verify") {
		t.Errorf("server without the op: stderr %q", errOut)
	}
}
