package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"go.yaml.in/yaml/v3"
)

// Timeouts of the process lifecycle.
const (
	// ReadyTimeout bounds the wait for /readyz to answer 200 after start.
	ReadyTimeout = 60 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL; it is
	// above Gatehouse's default shutdown_timeout of 15s.
	stopTimeout = 20 * time.Second
	// runTimeout bounds one admin subcommand run by Run.
	runTimeout = 2 * time.Minute
)

// Gatehouse is a running `gatehouse serve` started by StartGatehouse. The
// test's Cleanup stops it (SIGTERM, then SIGKILL after a deadline).
type Gatehouse struct {
	// HTTPSAddr, SSHAddr, HTTPAddr and AdminAddr are the listen addresses
	// from the config as written (host:port); "" when that listener is off.
	HTTPSAddr, SSHAddr, HTTPAddr, AdminAddr string
	// DataDir is the config's data_dir, a fresh temporary directory.
	DataDir string
	// ConfigPath is the config file serve was started with.
	ConfigPath string

	bin    string
	cmd    *exec.Cmd
	stderr *lineLog
	stdout *lineLog
	exited chan struct{} // closed when the process has exited
	// waitErr is cmd.Wait's result, readable once exited is closed.
	waitErr  error
	stopOnce sync.Once
	stopErr  error
	// exitReported is set when waitReady failed the test because the
	// process exited; the cleanup then does not report that exit again.
	exitReported bool
}

// StartGatehouse starts `gatehouse serve` with cfg, which it changes as
// StartGatehouseYAML describes. It returns once /readyz answers 200.
func StartGatehouse(t testing.TB, cfg *config.Config) *Gatehouse {
	t.Helper()
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatalf("StartGatehouse: marshal config: %v", err)
	}
	return StartGatehouseYAML(t, string(data))
}

// StartGatehouseYAML starts `gatehouse serve --config FILE` with the YAML
// config cfgYAML, after three changes: data_dir becomes a fresh temporary
// directory; every listen address whose port is 0 gets a free port (so
// "127.0.0.1:0" means "any free port; read it from the returned fields");
// and listen.admin, when absent, empty or port 0, becomes a free loopback
// port. It logs the process's stdout and stderr to t.Log, waits until the
// admin /readyz answers 200 (failing the test with the log tail if the
// process exits or ReadyTimeout passes first), and registers the stop.
func StartGatehouseYAML(t testing.TB, cfgYAML string) *Gatehouse {
	t.Helper()
	return StartGatehousesYAML(t, cfgYAML)[0]
}

// StartGatehousesYAML starts one `gatehouse serve` per config, all at
// once, each prepared as StartGatehouseYAML describes, and returns once
// every one is ready: replicas that race for the same shared state (an
// ACME order, keys created on first use) start together, as they would
// under an orchestrator.
func StartGatehousesYAML(t testing.TB, cfgYAMLs ...string) []*Gatehouse {
	t.Helper()
	bin := Binary(t)
	gs := make([]*Gatehouse, len(cfgYAMLs))
	for i, cfgYAML := range cfgYAMLs {
		// t.TempDir paths carry the test name and can exceed the 108-byte
		// limit of the Unix socket gatehouse creates in data_dir, so use a
		// short one.
		dir, err := os.MkdirTemp("", "gh-")
		if err != nil {
			t.Fatalf("StartGatehouse: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		g := &Gatehouse{bin: bin, DataDir: filepath.Join(dir, "data")}
		out, err := g.prepareConfig(t, []byte(cfgYAML))
		if err != nil {
			t.Fatalf("StartGatehouse: %v", err)
		}
		g.ConfigPath = filepath.Join(dir, "gatehouse.yaml")
		if err := os.WriteFile(g.ConfigPath, out, 0o600); err != nil {
			t.Fatalf("StartGatehouse: %v", err)
		}
		g.start(t)
		t.Cleanup(func() {
			// An exit before readiness has already failed the test, with the log.
			if err := g.Stop(); err != nil && !g.exitReported {
				t.Errorf("gatehouse stop: %v", err)
			}
		})
		gs[i] = g
	}
	for _, g := range gs {
		g.waitReady(t)
	}
	return gs
}

// prepareConfig applies StartGatehouseYAML's changes to the YAML document.
func (g *Gatehouse) prepareConfig(t testing.TB, in []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(in, &doc); err != nil {
		return nil, fmt.Errorf("config YAML: %w", err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("config YAML must be a mapping")
	}
	root := doc.Content[0]
	setScalar(root, "data_dir", g.DataDir)
	listen := mapValue(root, "listen")
	for _, f := range []struct {
		key   string
		addr  *string
		force bool
	}{
		{"https", &g.HTTPSAddr, false},
		{"ssh", &g.SSHAddr, false},
		{"http", &g.HTTPAddr, false},
		{"admin", &g.AdminAddr, true},
	} {
		v := scalarValue(listen, f.key)
		switch {
		case v == "" && f.force, strings.HasSuffix(v, ":0"):
			host := strings.TrimSuffix(v, ":0")
			if host == "" {
				host = "127.0.0.1"
			}
			v = fmt.Sprintf("%s:%d", host, FreePort(t))
			setScalar(listen, f.key, v)
		}
		*f.addr = v
	}
	return yaml.Marshal(&doc)
}

// mapValue returns the mapping under key in m, creating it if absent.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			if v.Kind != yaml.MappingNode { // e.g. "listen:" with no value
				*v = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			}
			return v
		}
	}
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
	return v
}

// scalarValue returns the scalar under key in m, or "".
func scalarValue(m *yaml.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.ScalarNode && m.Content[i+1].Tag != "!!null" {
			return m.Content[i+1].Value
		}
	}
	return ""
}

// setScalar sets key in m to the string value, adding the key if absent.
func setScalar(m *yaml.Node, key, value string) {
	v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

func (g *Gatehouse) start(t testing.TB) {
	t.Helper()
	g.stderr = newLineLog(t, "gatehouse")
	g.stdout = newLineLog(t, "gatehouse stdout")
	g.cmd = exec.Command(g.bin, "serve", "--config", g.ConfigPath)
	g.cmd.Stderr = g.stderr
	g.cmd.Stdout = g.stdout
	// If the test process dies, take gatehouse with it.
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	g.cmd.WaitDelay = 5 * time.Second
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start gatehouse: %v", err)
	}
	g.exited = make(chan struct{})
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.exited)
	}()
}

func (g *Gatehouse) waitReady(t testing.TB) {
	t.Helper()
	url := "http://" + g.AdminAddr + "/readyz"
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(ReadyTimeout)
	last := "no answer yet"
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-g.exited:
			g.exitReported = true
			t.Fatalf("gatehouse exited before it was ready (%v); log tail:\n%s", g.waitErr, g.stderr.tail(40))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("gatehouse not ready after %v (GET %s: %s); log tail:\n%s", ReadyTimeout, url, last, g.stderr.tail(40))
		}
	}
}

// Signal sends sig to the running process (e.g. syscall.SIGHUP to reload).
func (g *Gatehouse) Signal(sig os.Signal) error { return g.cmd.Process.Signal(sig) }

// Kill9AndRestart kills the process with SIGKILL, as a crash would (no
// chance to flush or clean up), then starts it again with the same config
// and data directory and returns once /readyz answers.
func (g *Gatehouse) Kill9AndRestart(t testing.TB) {
	t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL gatehouse: %v", err)
	}
	<-g.exited
	g.stderr.close()
	g.stdout.close()
	g.start(t)
	g.waitReady(t)
}

// Exited is closed when the process has exited.
func (g *Gatehouse) Exited() <-chan struct{} { return g.exited }

// Stop sends SIGTERM, waits up to 20s for the process to exit, then kills
// it. It returns the process's exit error (nil for a clean exit); a process
// that needed SIGKILL is an error. Calling Stop again returns the same.
func (g *Gatehouse) Stop() error {
	g.stopOnce.Do(func() {
		select {
		case <-g.exited:
			g.stopErr = g.exitError()
			g.stderr.close()
			g.stdout.close()
			return
		default:
		}
		if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			g.stopErr = fmt.Errorf("SIGTERM: %w", err)
		}
		select {
		case <-g.exited:
			if g.stopErr == nil {
				g.stopErr = g.exitError()
			}
		case <-time.After(stopTimeout):
			g.cmd.Process.Kill()
			<-g.exited
			g.stopErr = fmt.Errorf("still running %v after SIGTERM; killed", stopTimeout)
		}
		g.stderr.close()
		g.stdout.close()
	})
	return g.stopErr
}

func (g *Gatehouse) exitError() error {
	if g.waitErr != nil {
		return fmt.Errorf("gatehouse exited: %w", g.waitErr)
	}
	return nil
}

// Logs returns everything the process wrote to stderr so far (its log).
func (g *Gatehouse) Logs() string { return g.stderr.String() }

// Stdout returns everything the process wrote to stdout so far.
func (g *Gatehouse) Stdout() string { return g.stdout.String() }

// Result is the outcome of one gatehouse command run by Run or RunBinary.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
}

// Run runs an admin subcommand against this deployment: `gatehouse CMD
// --config ConfigPath ARGS...`. The command is args[0], or args[0:2] for
// the two-word commands ("recordings list", "audit verify"); the rest
// follow --config, so flags come before positional arguments as DESIGN.md
// requires. A non-zero exit is reported in Result, not as a test failure.
func (g *Gatehouse) Run(t testing.TB, args ...string) Result {
	t.Helper()
	if len(args) == 0 {
		t.Fatalf("Run: no command")
	}
	return RunBinary(t, commandArgs(g.ConfigPath, args)...)
}

// commandArgs inserts "--config path" after the command words of args.
func commandArgs(path string, args []string) []string {
	n := 1
	if (args[0] == "recordings" || args[0] == "audit") && len(args) > 1 {
		n = 2
	}
	return append(append(append([]string{}, args[:n]...), "--config", path), args[n:]...)
}

// MustRun is Run that fails the test on a non-zero exit and returns stdout.
func (g *Gatehouse) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	r := g.Run(t, args...)
	if r.ExitCode != 0 {
		t.Fatalf("gatehouse %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.ExitCode, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// RunBinary runs the gatehouse binary with args exactly as given (e.g.
// "check-config", "--config", path) and returns its output and exit code.
// It fails the test only if the binary cannot run or exceeds 2 minutes.
func RunBinary(t testing.TB, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("gatehouse %s: timed out after %v\nstderr:\n%s", strings.Join(args, " "), runTimeout, r.Stderr)
	case errors.As(err, &ee):
		r.ExitCode = ee.ExitCode()
	case err != nil:
		t.Fatalf("gatehouse %s: %v", strings.Join(args, " "), err)
	}
	return r
}
