package main

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestSetGCPolicy(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	undo := setGCPolicy(getenv)
	if got := debug.SetGCPercent(serveGCPercent); got != serveGCPercent {
		t.Errorf("GOGC after setGCPolicy = %d, want %d", got, serveGCPercent)
	}
	undo()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC after undo = %d, want the 100 from before", got)
	}

	// An operator's GOGC stands.
	env["GOGC"] = "200"
	setGCPolicy(getenv)()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set: GOGC changed to %d", got)
	}
}

func TestHeapFloor(t *testing.T) {
	for _, tc := range []struct {
		limit, want int64
	}{
		{math.MaxInt64, serveHeapFloor}, // no GOMEMLIMIT
		{4 << 30, serveHeapFloor},       // an eighth is more than the floor
		{256 << 20, 32 << 20},           // an eighth of the limit
		{0, 0},
	} {
		if got := heapFloor(tc.limit); got != tc.want {
			t.Errorf("heapFloor(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}
