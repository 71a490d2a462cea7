package main

import "runtime/debug"

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
// half of it. The block is never written, so the OS never backs it with
// memory: RSS does not grow by it (bench/http's idle mode sees the same
// RSS at start). Same runs: relay 2.2-2.3 CPU-s/GiB against 2.6-3.1 with
// GOGC=400, HTTPS 81 µs of CPU per request against 85-87, 36-39 KiB per
// idle HTTPS connection and 133 KiB per idle SSH session.
// runtime/debug.SetMemoryLimit cannot do this: it caps memory, it sets no
// floor.
const (
	serveGCPercent = 50
	serveHeapFloor = 64 << 20
)

// setGCPolicy applies serve's collector settings and returns the floor
// block, which the caller keeps alive (runtime.KeepAlive) while it serves.
// An operator who sets GOGC or GOMEMLIMIT has sized memory: then the
// runtime's own reading of them stands, without a floor (it would count
// against GOMEMLIMIT).
func setGCPolicy(getenv func(string) string) []byte {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return nil
	}
	debug.SetGCPercent(serveGCPercent)
	return make([]byte, serveHeapFloor)
}
