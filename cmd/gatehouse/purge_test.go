package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
	"github.com/gatehouse-dev/gatehouse/store"
)

// TestPurgeStoppedPartWayIsAudited checks that a purge that fails part-way
// still leaves a purge event (what it deleted so far, and why it stopped),
// rather than deleting data with no trace.
func TestPurgeStoppedPartWayIsAudited(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{DataDir: dir}
	cfg.ApplyDefaults()
	st, err := store.OpenBolt(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	al := &audittest.Recorder{}
	rec, err := recording.New(recorderConfig(cfg, st, secretstest.New(t), al, nil, "test"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close() // every step now fails
	if _, err := purge(context.Background(), cfg, rec, nil, al, "ann@example.com"); err == nil {
		t.Fatal("purge over a closed store reported success")
	}
	purges := al.Find(func(ev audit.Event) bool { return ev.Type == "purge" })
	if len(purges) != 1 || !strings.Contains(purges[0].Reason, "stopped part-way") {
		t.Fatalf("purge events = %+v, want one saying it stopped part-way", purges)
	}
	if strings.Contains(purges[0].Reason+purges[0].Actor, "ann@example.com") {
		t.Errorf("the purge event names the person: %+v", purges[0])
	}
}
