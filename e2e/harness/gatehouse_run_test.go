package harness

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
)

// TestStartGatehouseStruct starts the real binary from a *config.Config,
// runs an admin command against it and stops it cleanly.
func TestStartGatehouseStruct(t *testing.T) {
	cfg := &config.Config{
		PublicURL: "https://gate.test",
		Listen:    config.Listen{HTTPS: "127.0.0.1:0"},
		TLS:       config.TLS{Mode: config.TLSModeSelfSigned},
		Log:       config.Log{Format: "json"},
	}
	g := StartGatehouse(t, cfg)
	if g.HTTPSAddr == "" || strings.HasSuffix(g.HTTPSAddr, ":0") || g.AdminAddr == "" {
		t.Fatalf("addresses not assigned: https %q admin %q", g.HTTPSAddr, g.AdminAddr)
	}
	if r := g.Run(t, "audit", "verify"); r.ExitCode != 0 {
		t.Errorf("gatehouse audit verify: exit %d\n%s%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if err := g.Stop(); err != nil {
		t.Errorf("Stop() = %v, want a clean exit on SIGTERM", err)
	}
	if !strings.Contains(g.Logs(), g.HTTPSAddr) {
		t.Errorf("log does not mention the HTTPS address %s:\n%s", g.HTTPSAddr, g.Logs())
	}
}

// TestStartGatehouseReportsEarlyExit checks that a gatehouse that exits
// before it is ready fails the test at once, with its log in the message.
func TestStartGatehouseReportsEarlyExit(t *testing.T) {
	// listen.https without tls.mode: serve refuses the config and exits.
	ft := &fatalTB{TB: t}
	ft.run(func() {
		StartGatehouseYAML(ft, "public_url: https://gate.test\nlisten: {https: \"127.0.0.1:0\"}\n")
	})
	if ft.fatal == "" {
		t.Fatal("StartGatehouseYAML returned for a config serve refuses")
	}
	for _, want := range []string{"exited before it was ready", "tls.mode"} {
		if !strings.Contains(ft.fatal, want) {
			t.Errorf("failure message lacks %q:\n%s", want, ft.fatal)
		}
	}
}

// fatalTB records the first Fatalf and ends the goroutine, as testing.T
// does, so that the caller can inspect the message.
type fatalTB struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	if f.fatal == "" {
		f.fatal = fmt.Sprintf(format, args...)
	}
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

// run calls fn in a goroutine and waits for it to return or Goexit.
func (f *fatalTB) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}
