package identity

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSessionRecordRoundTrip(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 123, time.UTC)
	cases := []Session{
		{},
		{Host: "gate.example.com", Email: "ann@example.com", Created: now, LastSeen: now, Expires: now.Add(time.Hour), SSOAt: now},
		{Parent: "ab", Host: "h", Email: "é@x", Sub: "s", Groups: []string{"a", "", "c"}, MFAAt: now, UserAgent: "ua\x00", Source: "[::1]:1"},
	}
	for _, in := range cases {
		var out Session
		if err := unmarshalSession(marshalSession(&in), &out); err != nil {
			t.Fatalf("unmarshal(marshal(%+v)): %v", in, err)
		}
		if diff := cmp.Diff(in, out); diff != "" {
			t.Errorf("round trip (-in +out):\n%s", diff)
		}
	}
}

func FuzzSessionRecord(f *testing.F) {
	f.Add(marshalSession(&Session{Host: "h", Email: "e", Groups: []string{"g"}, Created: time.Unix(1, 0)}))
	f.Add([]byte{1})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Session
		if unmarshalSession(b, &s) != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes (CAS relies on a
		// canonical form).
		if got := marshalSession(&s); string(got) != string(b) {
			t.Fatalf("re-encoding %x gave %x", b, got)
		}
	})
}
