package recording

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzReadChunks feeds hostile bytes to the file reader: it must never
// panic, never accept a chunk over maxChunk, and always stop.
func FuzzReadChunks(f *testing.F) {
	e := newEnv(f, nil)
	w, err := e.rec.Start(f.Context(), testMeta())
	if err != nil {
		f.Fatal(err)
	}
	w.Output([]byte("seed output\r\n"))
	w.Close("normal")
	real, err := os.ReadFile(e.rec.path(w.ID()))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add(real[:len(real)/2])
	f.Add([]byte(magic + "\x01\x01a" + strings.Repeat("h", 32) + "C\x00\x00\x00\x01\xff\xff\xff\xff"))
	f.Add([]byte(magic + "\x01\x00"))
	f.Add([]byte("S"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := newScanner(bytes.NewReader(data))
		if err != nil {
			return
		}
		for range len(data) + 1 { // every record consumes at least one byte
			rec, err := s.next()
			if err != nil {
				return
			}
			if c, ok := rec.(*chunkRec); ok && len(c.ct) > maxChunk {
				t.Fatalf("chunk of %d bytes accepted", len(c.ct))
			}
		}
		t.Fatal("reader did not stop")
	})
}

// FuzzVerify runs the whole Verify path (chain, decryption, seal) over
// hostile files: it must not panic, and anything but the real file must
// fail.
func FuzzVerify(f *testing.F) {
	e := newEnv(f, nil)
	id := e.record(f, testMeta(), "seed output\r\n")
	real, err := os.ReadFile(e.rec.path(id))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add(real[:len(real)-3])
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(e.rec.path(id), data, 0o600); err != nil {
			t.Fatal(err)
		}
		rep, err := e.rec.Verify(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if same := bytes.Equal(data, real); rep.OK != same {
			t.Fatalf("Verify OK=%v for a file that is the real one: %v; problems %q", rep.OK, same, rep.Problems)
		}
		e.rec.Cast(context.Background(), id, io.Discard)
	})
}

// FuzzCast fuzzes the asciicast parser behind `recordings play`.
func FuzzCast(f *testing.F) {
	f.Add([]byte("{\"version\":2,\"width\":80,\"height\":24}\n[0.5, \"o\", \"hi\\r\\n\"]\n[1, \"r\", \"100x30\"]\n"))
	f.Add([]byte("{\"version\":2}\n[-1, \"o\", \"x\"]\n"))
	f.Add([]byte("{\"version\":2}\n[1e308, \"o\", \"x\"]\n[\"a\"]\n"))
	f.Add([]byte("{\"version\":1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var slept time.Duration
		sleep := func(_ context.Context, d time.Duration) error {
			if d < 0 || d > 2*time.Second {
				t.Fatalf("sleep %v outside [0, MaxIdle]", d)
			}
			slept += d
			return nil
		}
		var out bytes.Buffer
		Replay(context.Background(), bytes.NewReader(data), &out, ReplayOptions{Sleep: sleep})
		if out.Len() > len(data)*3 { // a JSON escape is never shorter than what it decodes to, UTF-8 at most triples
			t.Fatalf("wrote %d bytes for %d input bytes", out.Len(), len(data))
		}
	})
}

func TestReplay(t *testing.T) {
	cast := "{\"version\":2,\"width\":80,\"height\":24}\n[0.5, \"o\", \"a\"]\n[0.7, \"m\", \"exec: ls\"]\n[10.5, \"o\", \"b\"]\n[10.75, \"o\", \"c\"]\n"
	var sleeps []time.Duration
	var out bytes.Buffer
	err := Replay(t.Context(), strings.NewReader(cast), &out, ReplayOptions{Speed: 2,
		Sleep: func(_ context.Context, d time.Duration) error { sleeps = append(sleeps, d); return nil }})
	must(t, err)
	if out.String() != "abc" {
		t.Errorf("output %q, want abc", out.String())
	}
	want := []time.Duration{250 * time.Millisecond, 2 * time.Second, 125 * time.Millisecond}
	if len(sleeps) != 3 || sleeps[0] != want[0] || sleeps[1] != want[1] || sleeps[2] != want[2] {
		t.Errorf("sleeps %v, want %v (speed 2, idle capped at 2s)", sleeps, want)
	}
	sleeps = nil
	out.Reset()
	must(t, Replay(t.Context(), strings.NewReader(cast), &out, ReplayOptions{NoWait: true,
		Sleep: func(_ context.Context, d time.Duration) error { sleeps = append(sleeps, d); return nil }}))
	if len(sleeps) != 0 || out.String() != "abc" {
		t.Errorf("no-wait: sleeps %v, output %q", sleeps, out.String())
	}
	if err := Replay(t.Context(), strings.NewReader("{\"version\":1}\n"), &out, ReplayOptions{}); err == nil {
		t.Error("version 1 accepted")
	}
}

// FuzzJSONString: whatever the output bytes, the asciicast string is valid
// JSON that decodes to them, with each invalid UTF-8 byte as U+FFFD.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c\n\r\t\x00\x7f", "caf\xc3\xa9", "\xff\xfe", "\xe2\x80\xa8x\xe2\x80\xa9", "\xc3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		enc := appendJSONString(nil, data)
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", data, enc, err)
		}
		var want strings.Builder
		for i := 0; i < len(data); {
			r, size := utf8.DecodeRune(data[i:])
			want.WriteRune(r) // RuneError for an invalid byte, size 1
			i += size
		}
		if got != want.String() {
			t.Fatalf("%q round-trips to %q, want %q", data, got, want.String())
		}
	})
}
