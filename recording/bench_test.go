package recording

import (
	"fmt"
	"runtime"
	"testing"
)

// TestMemoryPerIdleWriter opens 200 recorded sessions that each wrote a
// prompt and went idle, and checks the heap each one holds (issue 7:
// at most 256 KiB per live recorded session).
func TestMemoryPerIdleWriter(t *testing.T) {
	e := newEnv(t, nil)
	const n = 200
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	ws := make([]*Writer, n)
	for i := range ws {
		w, err := e.rec.Start(t.Context(), testMeta())
		must(t, err)
		must(t, w.Output(fmt.Appendf(nil, "\x1b[32muser@host\x1b[0m:~$ ls -la /srv/app-%d\r\n", i)))
		must(t, w.flush(true))
		ws[i] = w
	}
	after := heap()
	per := (int64(after) - int64(before)) / n
	t.Logf("heap per idle recorded session: %d bytes (%d writers)", per, n)
	if per > 256<<10 {
		t.Errorf("heap per idle writer = %d bytes, want <= 256 KiB", per)
	}
	for _, w := range ws {
		must(t, w.Close("normal"))
	}
}

// BenchmarkSearch1000 searches 1,000 recorded sessions in a bbolt store
// for a word that occurs in one of them and one that occurs in all.
func BenchmarkSearch1000(b *testing.B) {
	e := newEnv(b, nil)
	ctx := b.Context()
	for i := range 1000 {
		w, err := e.rec.Start(ctx, testMeta())
		if err != nil {
			b.Fatal(err)
		}
		out := fmt.Sprintf("$ deploy service%d --region eu-%d\r\ncommon output words here\r\n", i, i%7)
		if err := w.Output([]byte(out)); err != nil {
			b.Fatal(err)
		}
		if err := w.Close("normal"); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		one, err := e.rec.List(ctx, Filter{Query: "service517"})
		if err != nil || len(one) != 1 {
			b.Fatalf("rare word: %d results, %v", len(one), err)
		}
		all, err := e.rec.List(ctx, Filter{Query: "common words", Limit: 50})
		if err != nil || len(all) != 50 {
			b.Fatalf("common words: %d results, %v", len(all), err)
		}
	}
}

// BenchmarkWriterOutput records 32 KiB writes of log-like terminal text
// through a real writer (asciicast lines, index text, age chunks, hash
// chain, file writes), the cost the SSH relay pays per read.
func BenchmarkWriterOutput(b *testing.B) {
	e := newEnv(b, nil)
	w, err := e.rec.Start(b.Context(), testMeta())
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	for i := 0; len(buf) < 32<<10; i++ {
		buf = fmt.Appendf(buf, "2026-12-04T06:%02d:%02dZ INFO request id=%d path=/api/v1/items/%d status=200 ms=%d\r\n",
			i/60%60, i%60, i, i*7, i%97)
	}
	buf = buf[:32<<10]
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Output(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close("normal"); err != nil {
		b.Fatal(err)
	}
}
