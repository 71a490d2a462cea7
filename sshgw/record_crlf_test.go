package sshgw

import "testing"

func TestToCRLF(t *testing.T) {
	for _, tc := range []struct {
		in     string
		prevCR bool
		want   string
	}{
		{"", false, ""},
		{"no newline", false, "no newline"},
		{"a\nb\n", false, "a\r\nb\r\n"},
		{"a\r\nb\n", false, "a\r\nb\r\n"},
		{"\n", true, "\n"}, // the '\r' ended the previous write
		{"\n", false, "\r\n"},
		{"\n\n", false, "\r\n\r\n"},
		{"x\r", false, "x\r"},
	} {
		if got := string(toCRLF(nil, []byte(tc.in), tc.prevCR)); got != tc.want {
			t.Errorf("toCRLF(%q, %v) = %q, want %q", tc.in, tc.prevCR, got, tc.want)
		}
	}
}

// TestCRLFStateAcrossWrites checks that a "\r\n" split over two writes is
// not doubled.
func TestCRLFStateAcrossWrites(t *testing.T) {
	w := &fakeRec{}
	s := &crlfState{}
	for _, p := range []string{"one\r", "\ntwo\n", "three"} {
		if err := s.output(w, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := w.out.String(), "one\r\ntwo\r\nthree"; got != want {
		t.Errorf("recorded %q, want %q", got, want)
	}
}
