package sshgw

import (
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/recording"
)

func TestSCPStream(t *testing.T) {
	tests := []struct {
		cmd, stream string
		upload      bool
		want        []string // "direction path bytes sha256" or "parse stopped"
	}{
		{"scp -t /tmp/", "C0644 5 a.txt\nhello\x00", true, []string{"upload /tmp/ (a.txt) 5 " + sha("hello")}},
		{"scp -t /tmp/a.txt", "C0644 5 a.txt\nhello\x00", true, []string{"upload /tmp/a.txt 5 " + sha("hello")}},
		{"scp -f /etc/motd", "T1 0 1 0\nC0644 3 motd\nhi\n\x00", false, []string{"download /etc/motd 3 " + sha("hi\n")}},
		{"scp -r -t /dst", "D0755 0 d\nC0644 1 x\nx\x00C0600 0 y\n\x00E\n", true,
			[]string{"upload /dst/d/x 1 " + sha("x"), "upload /dst/d/y 0 " + sha("")}},
		{"scp -r -f /var/log", "D0755 0 log\nC0644 2 s\nab\x00E\n", false, []string{"download /var/log/s 2 " + sha("ab")}},
		{"scp -t /tmp", "C0644 10 big\nonly5", true, []string{"upload /tmp (big) 5 partial"}},
		{"scp -t /tmp", "X what\n", true, []string{"parse stopped"}},
		{"scp -t /tmp", "C0644 5 ../evil\nhello\x00", true, []string{"parse stopped"}},
		{"scp -t /tmp", strings.Repeat("C", scpMaxLine+10), true, []string{"parse stopped"}},
	}
	for _, tc := range tests {
		var got []string
		s, upload := newSCPStream(tc.cmd, func(e recording.Event) {
			f := e.Fields
			if e.Type != recording.EventSCP {
				t.Errorf("event type %q", e.Type)
			}
			if f["op"] == "parse stopped" {
				got = append(got, "parse stopped")
				return
			}
			got = append(got, f["direction"]+" "+f["path"]+" "+f["bytes"]+" "+f["sha256"])
		})
		if s == nil || upload != tc.upload {
			t.Fatalf("%q: parser %v, upload %v", tc.cmd, s, upload)
		}
		feedSplit(s.feed, []byte(tc.stream), 2)
		s.finish()
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q %q: events %q, want %q", tc.cmd, tc.stream, got, tc.want)
		}
	}
	for _, cmd := range []string{"echo scp -t /tmp", "scp a b", "scp -t", "sftp -t x", "scp -t a b"} {
		if s, _ := newSCPStream(cmd, func(recording.Event) {}); s != nil {
			t.Errorf("%q parsed as legacy scp", cmd)
		}
	}
}
