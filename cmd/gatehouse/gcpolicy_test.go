package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// gogc reads GOGC without changing it.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitGOGC waits for the tuner to move GOGC off a value set by hand, which
// it does only after a collection. It collects while it waits: the tuner
// re-arms after it sets GOGC, so the collection that moved it need not be
// the one that finds its next sentinel.
func waitGOGC(t *testing.T, from int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		runtime.GC()
		if got := gogc(); got != from {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("GOGC still %d 5s after a collection: the tuner did not run", from)
	return 0
}

func TestSetGCPolicy(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	undo := setGCPolicy(getenv)
	if got := gogc(); got < serveGCPercent {
		t.Errorf("GOGC after setGCPolicy = %d, want at least %d", got, serveGCPercent)
	}
	// After each collection the tuner sets GOGC again: twice, so the
	// second proves that it re-arms itself.
	for i := range 2 {
		debug.SetGCPercent(7)
		if got := waitGOGC(t, 7); got < serveGCPercent {
			t.Errorf("collection %d: tuner set GOGC = %d, want at least %d", i, got, serveGCPercent)
		}
	}
	undo()
	if got := gogc(); got != 100 {
		t.Errorf("GOGC after undo = %d, want the 100 from before", got)
	}
	debug.SetGCPercent(7)
	runtime.GC()
	runtime.GC() // the cleanup of the last sentinel has had its chance
	time.Sleep(50 * time.Millisecond)
	if got := gogc(); got != 7 {
		t.Errorf("GOGC after undo and a collection = %d, want 7: the tuner still runs", got)
	}
	debug.SetGCPercent(100)

	// An operator's GOGC stands.
	env["GOGC"] = "200"
	setGCPolicy(getenv)()
	if got := gogc(); got != 100 {
		t.Errorf("with GOGC set: GOGC changed to %d", got)
	}
}

// goalFor is the runtime's heap goal for a GOGC (runtime/mgcpacer.go).
func goalFor(live, scan uint64, pct int) uint64 {
	return max(live+scan*uint64(pct)/100, heapMinimumPer100*uint64(pct)/100)
}

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	h := uint64(serveHeadroom)
	for _, tc := range []struct {
		name       string
		live, scan uint64
	}{
		{"before the first collection", 0, 0},
		{"tiny heap", 1 * mib, 1*mib + 200<<10},
		{"relaying bulk data", 3 * mib, 4 * mib},
		{"heap at the minimum's scale", 5 * mib, 6 * mib},
		{"heap about the headroom", 30 * mib, 40 * mib},
		{"1,000 idle SSH sessions", 53 * mib, 103 * mib},
		{"large heap", 2 << 30, 2<<30 + 100*mib},
	} {
		pct := gcPercentFor(tc.live, tc.scan, h)
		goal := goalFor(tc.live, tc.scan, pct)
		if pct < serveGCPercent {
			t.Errorf("%s: GOGC %d, below %d", tc.name, pct, serveGCPercent)
		}
		if tc.scan/2 >= h {
			// Over a large heap, plain GOGC=50.
			if pct != serveGCPercent {
				t.Errorf("%s: GOGC %d, want %d", tc.name, pct, serveGCPercent)
			}
			continue
		}
		// Otherwise the goal is live + headroom, give or take the
		// rounding of a percentage.
		lo, hi := tc.live+h-heapMinimumPer100/100, tc.live+h+tc.scan/100
		if goal < lo || goal > hi {
			t.Errorf("%s: GOGC %d gives a goal of %.1f MiB, want live+headroom = %.1f MiB",
				tc.name, pct, float64(goal)/mib, float64(tc.live+h)/mib)
		}
	}
}

func TestHeadroomUnder(t *testing.T) {
	for _, tc := range []struct {
		limit int64
		want  uint64
	}{
		{math.MaxInt64, serveHeadroom}, // no GOMEMLIMIT
		{4 << 30, serveHeadroom},       // a sixteenth is more than the headroom
		{256 << 20, 16 << 20},          // a sixteenth of the limit
		{0, 0},
	} {
		if got := headroomUnder(tc.limit); got != tc.want {
			t.Errorf("headroomUnder(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}
