package main

import (
	"runtime/debug"
	"testing"
)

func TestSetGCPolicy(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	floor := setGCPolicy(getenv)
	if len(floor) != serveHeapFloor {
		t.Fatalf("floor is %d bytes, want %d", len(floor), serveHeapFloor)
	}
	if got := debug.SetGCPercent(100); got != serveGCPercent {
		t.Fatalf("GOGC after setGCPolicy = %d, want %d", got, serveGCPercent)
	}

	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		env = map[string]string{k: "200"}
		if floor := setGCPolicy(getenv); floor != nil {
			t.Errorf("with %s set: a %d-byte floor, want none", k, len(floor))
		}
		if got := debug.SetGCPercent(100); got != 100 {
			t.Errorf("with %s set: GOGC changed to %d", k, got)
		}
	}
}
