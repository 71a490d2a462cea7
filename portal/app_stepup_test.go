package portal

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// TestStepUpLoopShowsTheRule is issue 10's "a step-up that cannot loop":
// a route that asks for a step-up again right after one gets a page that
// names the route and the rule, a log line and an audit event, not another
// redirect. The clock is the environment's injected one.
func TestStepUpLoopShowsTheRule(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	key := newPTKey()
	e.echo(e.login(c, key, "https://flash.test/", "ann@example.com", "eng"))

	// 20s later flash (mfa_max_age 10s) wants a newer confirmation than the
	// one just made: another trip could never satisfy it.
	e.clock.Advance(20 * time.Second)
	res := e.get(c, "https://flash.test/report")
	if res.StatusCode != http.StatusForbidden || res.Header.Get("Location") != "" {
		t.Fatalf("step-up asked again 20s after one = %d to %q, want 403 and no redirect", res.StatusCode, res.Header.Get("Location"))
	}
	for _, want := range []string{"flash", "route:flash", "10s", "mfa_max_age"} {
		if !strings.Contains(res.body, want) {
			t.Errorf("loop page lacks %q", want)
		}
	}
	var loops []audit.Event
	for _, ev := range e.audit.find("http.access", audit.Deny) {
		if strings.Contains(ev.Reason, "step-up loop") {
			loops = append(loops, ev)
		}
	}
	if len(loops) != 1 || loops[0].Resource != "route:flash" || loops[0].Details["rule"] != "route:flash" ||
		loops[0].Actor != "ann@example.com" || !strings.Contains(loops[0].Reason, "10s") {
		t.Errorf("loop audit events = %+v, want one naming route:flash and its 10s", loops)
	}
	if e.upHits.get() != 1 {
		t.Errorf("upstream saw %d requests, want only the first", e.upHits.get())
	}

	// Once the last confirmation is older than the loop window, a step-up
	// can help again and the gate asks for one as usual.
	e.clock.Advance(stepUpLoopWindow)
	res = e.get(c, "https://flash.test/report")
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "https://gate.test/auth/stepup?rd=") {
		t.Errorf("stale confirmation = %d to %q, want the step-up", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestStepUpLoops(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		mfaAt time.Time
		want  bool
	}{
		{"never confirmed", time.Time{}, false},
		{"just now", now, true},
		{"59s ago", now.Add(-59 * time.Second), true},
		{"a minute ago", now.Add(-time.Minute), false},
		{"an hour ago", now.Add(-time.Hour), false},
		{"in the future (clock skew)", now.Add(5 * time.Minute), true},
	}
	for _, tt := range tests {
		if got := stepUpLoops(tt.mfaAt, now); got != tt.want {
			t.Errorf("%s: stepUpLoops = %v, want %v", tt.name, got, tt.want)
		}
	}
}
