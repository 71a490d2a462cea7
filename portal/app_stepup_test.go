package portal

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// TestStepUpLoopShowsTheRule is issue 10's "a step-up that cannot loop":
// a route that asks for a step-up again right after one was completed for
// it gets a page that names the route and the rule, a log line and an
// audit event, not another redirect. The clock is the environment's
// injected one.
func TestStepUpLoopShowsTheRule(t *testing.T) {
	e := newPTEnv(t)
	c := e.client()
	key := newPTKey()
	e.echo(e.login(c, key, "https://flash.test/", "ann@example.com", "eng"))

	// 20s later flash (mfa_max_age 10s) asks for a step-up: a normal one,
	// since none was completed for it yet.
	e.clock.Advance(20 * time.Second)
	res := e.get(c, "https://flash.test/report")
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "https://gate.test/auth/stepup?rd=") {
		t.Fatalf("first stale confirmation = %d to %q, want the step-up", res.StatusCode, res.Header.Get("Location"))
	}
	page := e.follow(c, res.Header.Get("Location"))
	e.echo(e.follow(c, e.redirectOf(e.ceremony(c, page, key))))

	// The trip back took longer than the rule allows: 15s after the
	// step-up the rule asks again. Another step-up could never satisfy it.
	e.clock.Advance(15 * time.Second)
	res = e.get(c, "https://flash.test/report")
	if res.StatusCode != http.StatusForbidden || res.Header.Get("Location") != "" {
		t.Fatalf("step-up asked again 15s after one = %d to %q, want 403 and no redirect", res.StatusCode, res.Header.Get("Location"))
	}
	for _, want := range []string{"flash", "route:flash", "10s", "mfa_max_age", "15s ago"} {
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
	if e.upHits.get() != 2 {
		t.Errorf("upstream saw %d requests, want the two before the loop", e.upHits.get())
	}
	// Another rule is not affected: fresh (1m) still admits.
	e.echo(e.follow(c, "https://fresh.test/"))

	// Once the step-up is older than the loop window, a new one can help
	// again and the gate asks for it as usual.
	e.clock.Advance(stepUpLoopWindow)
	res = e.get(c, "https://flash.test/report")
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "https://gate.test/auth/stepup?rd=") {
		t.Errorf("stale confirmation = %d to %q, want the step-up", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestStepUpsLoops(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sentAt := now.Add(-30 * time.Second)
	k := stepUpKey{session: "s1", rule: "route:a"}
	tests := []struct {
		name  string
		key   stepUpKey
		mfaAt time.Time
		want  bool
	}{
		{"never confirmed", k, time.Time{}, false},
		{"confirmed before the step-up was asked", k, sentAt.Add(-time.Second), false},
		{"step-up completed just now", k, now, true},
		{"step-up completed 29s ago", k, sentAt.Add(time.Second), true},
		{"another rule", stepUpKey{session: "s1", rule: "route:b"}, now, false},
		{"another session", stepUpKey{session: "s2", rule: "route:a"}, now, false},
		{"in the future (clock skew)", k, now.Add(5 * time.Minute), true},
	}
	s := newStepUps()
	s.sent(k, sentAt)
	for _, tt := range tests {
		if got := s.loops(tt.key, tt.mfaAt, now); got != tt.want {
			t.Errorf("%s: loops = %v, want %v", tt.name, got, tt.want)
		}
	}
	// A minute after the step-up it is history.
	if s.loops(k, sentAt.Add(time.Second), sentAt.Add(time.Second+stepUpLoopWindow)) {
		t.Errorf("a step-up older than the window still counts as a loop")
	}
}
