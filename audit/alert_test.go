package audit

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAlerter(t *testing.T) {
	deny := func(sec int, source, actor string) Event {
		return Event{Time: t0.Add(time.Duration(sec) * time.Second), Type: "ssh.auth", Decision: Deny, Source: source, Actor: actor}
	}
	// alertKey summarises an alert as "source 192.0.2.1" or "actor a@x".
	type alertKey = string
	tests := []struct {
		name   string
		events []Event
		want   []alertKey // alerts raised, in order
	}{
		{"below threshold", []Event{deny(0, "192.0.2.1:1", ""), deny(1, "192.0.2.1:2", "")}, nil},
		{"three denies from one host, any port", []Event{
			deny(0, "192.0.2.1:1000", ""), deny(10, "192.0.2.1:1001", ""), deny(20, "192.0.2.1:1002", ""),
		}, []alertKey{"source 192.0.2.1"}},
		{"IPv6 source", []Event{
			deny(0, "[2001:db8::1]:22", ""), deny(1, "[2001:db8::1]:23", ""), deny(2, "[2001:db8::1]:24", ""),
		}, []alertKey{"source 2001:db8::1"}},
		{"spread beyond the window", []Event{
			deny(0, "192.0.2.1:1", ""), deny(40, "192.0.2.1:1", ""), deny(80, "192.0.2.1:1", ""), deny(120, "192.0.2.1:1", ""),
		}, nil},
		{"different hosts do not add up", []Event{
			deny(0, "192.0.2.1:1", ""), deny(1, "192.0.2.2:1", ""), deny(2, "192.0.2.3:1", ""),
		}, nil},
		{"allows and alerts do not count", []Event{
			deny(0, "192.0.2.1:1", ""),
			{Time: t0, Decision: Allow, Source: "192.0.2.1:1"},
			{Time: t0, Type: AlertType, Decision: Deny, Source: "192.0.2.1:1"},
			deny(1, "192.0.2.1:1", ""),
		}, nil},
		{"one alert per window, then again", []Event{
			deny(0, "192.0.2.1:1", ""), deny(1, "192.0.2.1:1", ""), deny(2, "192.0.2.1:1", ""), // alert
			deny(3, "192.0.2.1:1", ""), deny(4, "192.0.2.1:1", ""), deny(30, "192.0.2.1:1", ""), // quiet
			deny(62, "192.0.2.1:1", ""), deny(63, "192.0.2.1:1", ""), deny(64, "192.0.2.1:1", ""), // alert
		}, []alertKey{"source 192.0.2.1", "source 192.0.2.1"}},
		{"one actor from many hosts", []Event{
			deny(0, "192.0.2.1:1", "eve@example.com"), deny(1, "192.0.2.2:1", "eve@example.com"), deny(2, "192.0.2.3:1", "eve@example.com"),
		}, []alertKey{"actor eve@example.com"}},
		{"source and actor together", []Event{
			deny(0, "192.0.2.9:1", "eve@example.com"), deny(1, "192.0.2.9:1", "eve@example.com"), deny(2, "192.0.2.9:1", "eve@example.com"),
		}, []alertKey{"source 192.0.2.9", "actor eve@example.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAlerter(AlertOptions{Denials: 3, DenialWindow: time.Minute})
			var got []alertKey
			for _, ev := range tc.events {
				for _, alert := range a.Observe(ev) {
					if alert.Type != AlertType || alert.Details["threshold"] != "3" || alert.Reason == "" {
						t.Errorf("alert = %+v, want a complete alert event", alert)
					}
					if alert.Source != "" {
						got = append(got, "source "+alert.Source)
					} else {
						got = append(got, "actor "+alert.Actor)
					}
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("alerts mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAlerterBoundedMemory(t *testing.T) {
	a := NewAlerter(AlertOptions{Denials: 3, DenialWindow: time.Minute, MaxKeys: 50})
	for i := range 1000 {
		a.Observe(Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Decision: Deny, Source: fmt.Sprintf("198.51.100.%d:1", i)})
		if len(a.keys) > 50 {
			t.Fatalf("after %d sources the alerter tracks %d keys, want at most 50", i+1, len(a.keys))
		}
	}
	// A hot source is still caught while the table is full.
	var alerts []Event
	for i := range 3 {
		alerts = append(alerts, a.Observe(Event{Time: t0.Add(2 * time.Second), Decision: Deny, Source: "203.0.113.7:9", Seq: uint64(i)})...)
	}
	if len(alerts) != 1 || alerts[0].Source != "203.0.113.7" {
		t.Errorf("alerts = %+v, want one for 203.0.113.7", alerts)
	}
}

func TestLogRecordsAlerts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path, Options{Alerter: NewAlerter(AlertOptions{Denials: 3, DenialWindow: time.Minute})})
	for i := range 3 {
		mustLog(t, l, Event{Type: "ssh.auth", Decision: Deny, Source: fmt.Sprintf("192.0.2.7:%d", 4000+i), Reason: "unknown key"})
	}
	mustLog(t, l, Event{Type: "ssh.auth", Decision: Allow, Source: "192.0.2.8:1"})
	l.Close()
	if n, err := VerifyFile(path); err != nil || n != 5 {
		t.Fatalf("VerifyFile = %d, %v; want 5 lines (4 events and 1 alert)", n, err)
	}
	evs, _ := readEvents(t, path)
	alert := evs[3]
	if alert.Type != AlertType || alert.Seq != 4 || alert.Source != "192.0.2.7" || alert.Details["last_seq"] != "3" {
		t.Errorf("line 4 = %+v, want the alert for 192.0.2.7 after seq 3", alert)
	}
}
