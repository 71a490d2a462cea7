package sshgw

import (
	"fmt"
	"testing"
)

// TestPreAuthApprovalWaitsLeaveTheTotal: connections waiting for a browser
// approval move out of the total cap into the approval waits, so a few
// sources whose approvals nobody grants cannot fill the total cap for
// everyone (found by review: ten sources held all 100 slots for minutes).
func TestPreAuthApprovalWaitsLeaveTheTotal(t *testing.T) {
	p, err := newPreauth(PreAuth{PerSource: 10, Start: 2, Full: 2, WaitsPerSource: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	relA1, r1 := p.admit("10.0.0.1:1")
	relA2, r2 := p.admit("10.0.0.1:2")
	if r1 != "" || r2 != "" {
		t.Fatalf("first two refused: %q %q", r1, r2)
	}
	if _, r := p.admit("10.0.0.2:1"); r != refusedTotal {
		t.Fatalf("third connection: %q, want refused on the total", r)
	}
	un1, ok1 := p.park("10.0.0.1:1")
	un2, ok2 := p.park("10.0.0.1:2")
	if !ok1 || !ok2 {
		t.Fatal("parking two waits from one source refused")
	}
	if _, ok := p.park("10.0.0.1:3"); ok {
		t.Error("a third wait from the same source was parked, want the per-source wait cap")
	}
	relB, r := p.admit("10.0.0.2:1")
	if r != "" {
		t.Fatalf("another source while two wait for approval: %q, want admitted", r)
	}
	// A parked connection ends: its release, then its unpark.
	relA1()
	un1()
	p.mu.Lock()
	total, waits, perA := p.total, p.waits, p.per["10.0.0.1"]
	p.mu.Unlock()
	if total != 1 || waits != 1 || perA != 1 {
		t.Errorf("after one wait ended: total %d, waits %d, per-source %d; want 1, 1, 1", total, waits, perA)
	}
	relA2()
	un2()
	relB()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.total != 0 || p.waits != 0 || len(p.per) != 0 || len(p.waitsPer) != 0 {
		t.Errorf("all released: total %d, waits %d, per %v, waitsPer %v", p.total, p.waits, p.per, p.waitsPer)
	}
}

// TestPreAuthOneSourceCannotStartDrops: with the defaults, one source at
// its per-source cap leaves the total below MaxStartups' start, so a
// connection from anywhere else is never dropped at random (seen in e2e:
// 10 idle handshakes from one address made a person elsewhere fail 30% of
// the time with OpenSSH's 10:30:100).
func TestPreAuthOneSourceCannotStartDrops(t *testing.T) {
	lim := PreAuth{}.withDefaults()
	if lim.PerSource >= lim.Start {
		t.Fatalf("defaults PerSource %d, Start %d: one source can reach the random-drop zone", lim.PerSource, lim.Start)
	}
	p, err := newPreauth(PreAuth{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range lim.PerSource {
		if _, r := p.admit(fmt.Sprintf("10.0.0.1:%d", i)); r != "" {
			t.Fatalf("connection %d from the flooding source refused early: %q", i, r)
		}
	}
	for i := range 1000 {
		release, r := p.admit(fmt.Sprintf("10.0.0.2:%d", i))
		if r != "" {
			t.Fatalf("a person on another source was refused (%q) after %d tries", r, i)
		}
		release() // she authenticated; the flood stays
	}
}
