package recording

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAsciinemaAcceptsCast runs Debian's asciinema (2.2) on an exported
// recording with output, a resize, markers and an event, when it is
// installed. asciinema opens /dev/tty, so it runs under script(1).
func TestAsciinemaAcceptsCast(t *testing.T) {
	if _, err := exec.LookPath("asciinema"); err != nil {
		t.Skip("asciinema not installed")
	}
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script not installed")
	}
	e := newEnv(t, nil)
	w, err := e.rec.Start(t.Context(), testMeta())
	must(t, err)
	must(t, w.Output([]byte("$ echo hello-from-recording\r\nhello-from-recording\r\n")))
	must(t, w.Resize(132, 43))
	must(t, w.Event(Event{Type: EventExec, Fields: map[string]string{"command": "echo \"quoted\" \\ ✓"}}))
	must(t, w.Output([]byte("\x1b[1mbold ✓\x1b[0m \x00\x7f\xff\r\n")))
	must(t, w.Close("normal"))
	path := filepath.Join(t.TempDir(), "x.cast")
	f, err := os.Create(path)
	must(t, err)
	must(t, e.rec.Cast(t.Context(), w.ID(), f))
	must(t, f.Close())
	out, err := exec.Command("script", "-qec", "asciinema cat "+path, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("asciinema cat: %v\n%s", err, out)
	}
	for _, want := range []string{"hello-from-recording", "bold ✓"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("asciinema cat output lacks %q:\n%q", want, out)
		}
	}
	if strings.Contains(string(out), "Traceback") || strings.Contains(string(out), "rror") {
		t.Errorf("asciinema complained:\n%s", out)
	}
}
