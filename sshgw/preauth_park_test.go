package sshgw

import "testing"

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
