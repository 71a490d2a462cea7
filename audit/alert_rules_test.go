package audit

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rulesOptions is what serve passes, with small thresholds.
func rulesOptions() AlertOptions {
	return AlertOptions{
		Failures: 3, FailureWindow: 10 * time.Minute, FailureTypes: []string{"approval", "webauthn.assert"},
		Denials: 5, DenialWindow: time.Minute,
		ImmediateTypes: map[string]string{"webauthn.cloned_key": RuleKeyCounter, "recording.verify": RuleRecording},
		RepeatAfter:    10 * time.Minute,
	}
}

func TestAlerterRules(t *testing.T) {
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	fail := func(sec int, typ, actor string) Event {
		return Event{Time: at(sec), Type: typ, Decision: Deny, Actor: actor, Reason: "verification code does not match"}
	}
	locked := func(sec int, typ, actor, source string) Event {
		return Event{Time: at(sec), Type: typ, Decision: Deny, Actor: actor, Source: source, Reason: ReasonLocked}
	}
	tampered := func(sec int, id string) Event {
		return Event{Time: at(sec), Type: "recording.verify", Decision: Deny, Actor: "rev@example.com", Resource: "recording:" + id}
	}
	// got summarises an alert as "rule key value count window".
	tests := []struct {
		name   string
		events []Event
		want   []string
	}{
		{"failed approvals and assertions of one person add up", []Event{
			fail(0, "approval", "eve@example.com"), fail(60, "webauthn.assert", "eve@example.com"), fail(120, "approval", "eve@example.com"),
		}, []string{"failures actor eve@example.com 3 10m0s"}},
		{"failures spread beyond the window", []Event{
			fail(0, "approval", "eve@example.com"), fail(400, "approval", "eve@example.com"), fail(800, "approval", "eve@example.com"),
		}, nil},
		{"failures of other types do not count", []Event{
			fail(0, "http.access", "eve@example.com"), fail(1, "http.access", "eve@example.com"), fail(2, "http.access", "eve@example.com"),
		}, nil},
		{"failures without a person do not count", []Event{
			fail(0, "approval", ""), fail(1, "approval", ""), fail(2, "approval", ""),
		}, nil},
		{"one failures alert per window", []Event{
			fail(0, "approval", "eve@example.com"), fail(20, "approval", "eve@example.com"), fail(40, "approval", "eve@example.com"),
			fail(60, "approval", "eve@example.com"), fail(80, "approval", "eve@example.com"), fail(100, "approval", "eve@example.com"),
			fail(700, "approval", "eve@example.com"), fail(720, "approval", "eve@example.com"), fail(740, "approval", "eve@example.com"),
		}, []string{"failures actor eve@example.com 3 10m0s", "failures actor eve@example.com 3 10m0s"}},
		{"a locked person alerts at once, then stays quiet", []Event{
			locked(0, "ssh.auth", "bob@example.com", "192.0.2.5:1"), locked(5, "sso.login", "bob@example.com", "192.0.2.6:1"),
			locked(601, "ssh.auth", "bob@example.com", "192.0.2.5:1"),
		}, []string{"locked actor bob@example.com 1 10m0s", "locked actor bob@example.com 2 10m0s"}},
		{"a locked attempt without a person is keyed by source", []Event{
			locked(0, "ssh.auth", "", "192.0.2.5:1"),
		}, []string{"locked source 192.0.2.5 1 10m0s"}},
		{"each tampered recording alerts", []Event{
			tampered(0, "r1"), tampered(1, "r1"), tampered(2, "r2"),
		}, []string{"recording resource recording:r1 1 10m0s", "recording resource recording:r2 1 10m0s"}},
		{"a key counter regression alerts at once", []Event{
			{Time: at(0), Type: "webauthn.cloned_key", Decision: Deny, Actor: "ann@example.com"},
		}, []string{"key_counter actor ann@example.com 1 10m0s"}},
		{"many denials of one person are also a burst", []Event{
			fail(0, "approval", "eve@example.com"), fail(1, "approval", "eve@example.com"), fail(2, "approval", "eve@example.com"),
			fail(3, "approval", "eve@example.com"), fail(4, "approval", "eve@example.com"),
		}, []string{"failures actor eve@example.com 3 10m0s", "denials actor eve@example.com 5 1m0s"}},
		{"allowed events never alert", []Event{
			{Time: at(0), Type: "webauthn.cloned_key", Decision: Allow, Actor: "ann@example.com"},
			{Time: at(0), Type: "recording.verify", Decision: Allow, Resource: "recording:r1"},
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAlerter(rulesOptions())
			var got []string
			for _, ev := range tc.events {
				for _, al := range a.Observe(ev) {
					d := al.Details
					if al.Type != AlertType || al.Reason == "" || d["trigger"] != ev.Type {
						t.Errorf("alert = %+v, want a complete alert for %s", al, ev.Type)
					}
					got = append(got, d["rule"]+" "+d["key"]+" "+d["value"]+" "+d["count"]+" "+d["window"])
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("alerts mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// A zero count or window turns a rule off: the library does not default,
// the configuration does.
func TestAlerterZeroRulesAreOff(t *testing.T) {
	a := NewAlerter(AlertOptions{FailureTypes: []string{"approval"}})
	for i := range 100 {
		ev := Event{Time: t0.Add(time.Duration(i) * time.Second), Type: "approval", Decision: Deny, Actor: "eve@example.com", Source: "192.0.2.1:1"}
		if got := a.Observe(ev); len(got) != 0 {
			t.Fatalf("event %d raised %+v with every threshold zero", i, got)
		}
	}
}
