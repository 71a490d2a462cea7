package main

import (
	"math"
	"runtime"
	"runtime/debug"
)

// serve's garbage collector settings, chosen from measurement (issue 11;
// bench/ssh/RESULTS.md and bench/http/RESULTS.md, 2026-12-04).
//
// Gatehouse's live heap is a few MiB while it moves bulk SSH data, and
// x/crypto/ssh allocates a fresh 32 KiB buffer for every packet it reads.
// With the default GOGC=100 the heap goal is then a few MiB too: the
// collector runs hundreds of times per GiB relayed and the runtime keeps
// handing pages back to the OS and faulting them in again (relay 3.5-3.9
// CPU-s/GiB). GOGC=400 cured that by multiplying the goal, but a multiplier
// also multiplies memory once the live heap is large: with 10,000 idle
// HTTPS connections or 1,000 idle SSH sessions most of the RSS was
// collectable garbage (64 KiB per HTTPS connection, 215 KiB per SSH
// session).
//
// So the goal gets a floor instead: a 64 MiB block that is allocated and
// never touched counts as live heap, which makes the goal at least
// 1.5 × 64 MiB, while GOGC=50 keeps the headroom over a large live heap to
// half of it. Same runs: relay 2.2-2.3 CPU-s/GiB against 2.6-3.1 with
// GOGC=400, HTTPS 81 µs of CPU per request against 85-87, 33-38 KiB per
// idle HTTPS connection and 130-148 KiB per idle SSH session.
// runtime/debug.SetMemoryLimit cannot do this: it caps memory, it sets no
// floor.
//
// What the floor costs: the block itself is never written, so the OS never
// backs it (bench/http's idle mode sees the same RSS at start), but the
// garbage it lets pile up is real: with a live heap of L MiB, up to about
// 32 + 1.5 L MiB in use before a collection, against 5 L with GOGC=400 (for
// a tiny heap, 3 MiB live, 36 MiB against 15). Go's heap metrics count the
// block (heap in use is 64 MiB higher than what is resident), and so does a
// memory limit: under GOMEMLIMIT the floor shrinks to an eighth of it.
const (
	serveGCPercent = 50
	serveHeapFloor = 64 << 20
)

// setGCPolicy applies serve's collector settings and returns the function
// that undoes them, which serve calls when it returns (it also keeps the
// floor block alive until then). An operator's GOGC stands as the runtime
// read it, without a floor: whoever set it chose the trade-off.
func setGCPolicy(getenv func(string) string) (undo func()) {
	if getenv("GOGC") != "" {
		return func() {}
	}
	prev := debug.SetGCPercent(serveGCPercent)
	// SetMemoryLimit(-1) only reads the limit (GOMEMLIMIT or a caller's).
	floor := make([]byte, heapFloor(debug.SetMemoryLimit(-1)))
	return func() {
		runtime.KeepAlive(floor)
		debug.SetGCPercent(prev)
	}
}

// heapFloor is the floor's size under a memory limit (math.MaxInt64: none).
func heapFloor(limit int64) int64 {
	if limit < math.MaxInt64 {
		return max(0, min(serveHeapFloor, limit/8))
	}
	return serveHeapFloor
}
