package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// serve's garbage collector settings, chosen from measurement (issue 11;
// bench/ssh/RESULTS.md and bench/http/RESULTS.md, 2026-12-04).
//
// Gatehouse's live heap is a few MiB while it moves bulk SSH data, and
// x/crypto/ssh allocates a fresh 32 KiB buffer for every packet it reads.
// With the default GOGC=100 the heap goal is then a few MiB too: the
// collector runs hundreds of times per GiB relayed (relay 3.5-3.9
// CPU-s/GiB). A larger GOGC cures that by multiplying the goal, but a
// multiplier also multiplies memory once the live heap is large: with
// 10,000 idle HTTPS connections or 1,000 idle SSH sessions most of the RSS
// was collectable garbage (64 KiB per HTTPS connection, 215 KiB per SSH
// session at GOGC=400).
//
// So the headroom, the garbage allowed to pile up between two collections,
// is what is set: at least serveHeadroom, and over a large live heap half
// of it (GOGC=50). Go has no such knob, so after every collection the
// tuner sets GOGC to the percentage that gives that headroom over the heap
// just marked. runtime/debug.SetMemoryLimit cannot do this: it caps memory,
// it sets no floor.
//
// An earlier version got the same floor from a 64 MiB block allocated and
// never touched (relay 2.2-2.3 CPU-s/GiB against 2.6-3.1 with GOGC=400).
// But the block counted as live heap, so GOGC=50 added half of it to every
// goal (32 MiB more garbage than this tuner allows), and Go's heap metrics
// were 64 MiB higher than what was resident.
const (
	serveGCPercent = 50
	serveHeadroom  = 32 << 20
)

// setGCPolicy starts serve's collector tuning and returns the function
// that stops it and puts GOGC back, which serve calls when it returns. An
// operator's GOGC stands as the runtime read it: whoever set it chose the
// trade-off.
func setGCPolicy(getenv func(string) string) (undo func()) {
	if getenv("GOGC") != "" {
		return func() {}
	}
	// SetMemoryLimit(-1) only reads the limit (GOMEMLIMIT or a caller's).
	t := &gcTuner{
		headroom: headroomUnder(debug.SetMemoryLimit(-1)),
		prev:     debug.SetGCPercent(serveGCPercent),
		samples: []metrics.Sample{
			{Name: "/gc/heap/live:bytes"},
			{Name: "/gc/scan/stack:bytes"},
			{Name: "/gc/scan/globals:bytes"},
		},
	}
	t.tune()
	t.arm()
	return t.stop
}

// headroomUnder is the headroom under a memory limit (math.MaxInt64: none):
// at most a sixteenth of the limit, so the runtime's own limit-driven
// collections stay the exception.
func headroomUnder(limit int64) uint64 {
	if limit < math.MaxInt64 {
		return uint64(max(0, min(serveHeadroom, limit/16)))
	}
	return serveHeadroom
}

// gcTuner re-sets GOGC after every collection (see serveHeadroom).
type gcTuner struct {
	headroom uint64

	mu      sync.Mutex // serializes tune with stop
	stopped bool
	prev    int // GOGC before the tuner started
	samples []metrics.Sample
}

// gcSentinel is the object whose collection tells the tuner that a cycle
// has ended. It holds a pointer so that the runtime never batches it with
// other objects in one tiny allocation, where its cleanup might never run.
type gcSentinel struct{ _ *byte }

// arm asks to be called after the next collection: a fresh sentinel,
// unreachable at once, is found dead by that cycle.
func (t *gcTuner) arm() {
	runtime.AddCleanup(new(gcSentinel), func(t *gcTuner) {
		if t.tune() {
			t.arm()
		}
	}, t)
}

// tune sets GOGC from the last cycle's marked heap and reports whether the
// tuner still runs.
func (t *gcTuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.samples)
	live := t.samples[0].Value.Uint64()
	scan := live + t.samples[1].Value.Uint64() + t.samples[2].Value.Uint64()
	debug.SetGCPercent(gcPercentFor(live, scan, t.headroom))
	return true
}

func (t *gcTuner) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	debug.SetGCPercent(t.prev)
}

// heapMinimumPer100 is the runtime's smallest heap goal at GOGC=100; the
// runtime scales it with GOGC (runtime/mgcpacer.go, defaultHeapMinimum).
const heapMinimumPer100 = 4 << 20

// gcPercentFor is the GOGC that makes the next heap goal about live +
// headroom, or live plus half the scannable memory if that is more. The
// runtime's goal is live + scan × GOGC/100 (scan: live heap, stacks and
// globals), but never below heapMinimumPer100 × GOGC/100, so over a heap
// of a few MiB the percentage is held where that minimum is live +
// headroom rather than several times it.
func gcPercentFor(live, scan, headroom uint64) int {
	pct := uint64(math.MaxInt32)
	if scan > 0 {
		pct = (100*headroom + scan - 1) / scan
	}
	pct = min(pct, 100*(live+headroom)/heapMinimumPer100)
	return int(max(serveGCPercent, pct))
}
