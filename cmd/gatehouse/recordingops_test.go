package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
)

// A recording that fails verification, found by `recordings verify` or by
// a playback, is a recording.verify refusal that raises a "recording"
// alert. Without a server each command opens the audit log with its own
// alerter, so each raises one; through serve's one alerter the second look
// within audit.alerts.repeat_after stays quiet (audit's tests).
func TestTamperedRecordingIsAuditedAndAlerts(t *testing.T) {
	f := newRecFixture(t)
	runCLI(t, 0, "recordings", "verify", "--config", f.path, f.held)
	file := filepath.Join(f.dir, "recordings", f.ann+".ghrec")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-100] ^= 1
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	runCLI(t, 1, "recordings", "verify", "--config", f.path, f.ann)
	runCLI(t, 1, "recordings", "play", "--config", f.path, "--no-wait", f.ann)

	var verifies, alerts []string
	for _, ev := range auditEvents(t, f.cfg) {
		switch ev.Type {
		case eventRecordingVerify:
			verifies = append(verifies, ev.Decision+" "+ev.Resource)
		case "alert":
			alerts = append(alerts, ev.Details["rule"]+" "+ev.Details["value"]+" count "+ev.Details["count"])
		}
	}
	wantVerifies := []string{"allow recording:" + f.held, "deny recording:" + f.ann, "deny recording:" + f.ann}
	if strings.Join(verifies, "\n") != strings.Join(wantVerifies, "\n") {
		t.Errorf("recording.verify events:\n%s\nwant:\n%s", strings.Join(verifies, "\n"), strings.Join(wantVerifies, "\n"))
	}
	want := "recording recording:" + f.ann + " count 1"
	if len(alerts) != 2 || alerts[0] != want || alerts[1] != want {
		t.Errorf("alerts = %q, want two of %q", alerts, want)
	}
}

// auditEvents parses the deployment's audit log.
func auditEvents(t *testing.T, cfg *config.Config) []audit.Event {
	t.Helper()
	b, err := os.ReadFile(auditPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	var evs []audit.Event
	for line := range bytes.Lines(b) {
		var ev audit.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}
