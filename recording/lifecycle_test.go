package recording

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestFlushEverySecond: output becomes readable (decryptable, chained)
// within FlushInterval while the session is still open, and an idle writer
// writes nothing more.
func TestFlushEverySecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.FlushInterval = time.Second })
		w, err := e.rec.Start(t.Context(), testMeta())
		must(t, err)
		must(t, w.Output([]byte("visible-soon\r\n")))
		if strings.Contains(e.cast(t, w.ID()), "visible-soon") {
			t.Fatal("output readable before any flush: the test proves nothing")
		}
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		if !strings.Contains(e.cast(t, w.ID()), "visible-soon") {
			t.Fatal("output not readable one FlushInterval after it was written")
		}
		fi1, _ := os.Stat(e.rec.path(w.ID()))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		fi2, _ := os.Stat(e.rec.path(w.ID()))
		if fi1.Size() != fi2.Size() {
			t.Errorf("idle writer grew the file from %d to %d bytes", fi1.Size(), fi2.Size())
		}
		rep := problems(t, e, w.ID())
		if !rep.OK || rep.Complete || rep.Chunks != 2 {
			t.Errorf("live report = %+v, want OK, not complete, 2 chunks", rep)
		}
		must(t, w.Close("normal"))
	})
}

func TestWatch(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	w, err := e.rec.Start(ctx, testMeta())
	must(t, err)
	ch, err := e.rec.Watch(ctx, w.ID())
	must(t, err)
	if first := string(<-ch); !strings.Contains(first, `"version":2`) {
		t.Errorf("first line %q, want the asciicast header", first)
	}
	must(t, w.Output([]byte("live!")))
	if l := string(<-ch); !strings.Contains(l, `"o", "live!"]`) {
		t.Errorf("line %q, want the output event", l)
	}
	must(t, w.Close("normal"))
	if _, ok := <-ch; ok {
		t.Error("channel still open after the session ended")
	}
	if _, err := e.rec.Watch(ctx, w.ID()); err == nil {
		t.Error("Watch of an ended session succeeded")
	}
	// A viewer whose context ends is let go.
	w2, _ := e.rec.Start(ctx, testMeta())
	vctx, cancel := context.WithCancel(ctx)
	ch2, err := e.rec.Watch(vctx, w2.ID())
	must(t, err)
	cancel()
	for range ch2 {
	}
	must(t, w2.Close("normal"))
}

// TestWriteFailure: when the file cannot be written (disk full), Err says
// so, writes fail, and the recording ends up incomplete, not sealed.
func TestWriteFailure(t *testing.T) {
	e := newEnv(t, nil)
	w, err := e.rec.Start(t.Context(), testMeta())
	must(t, err)
	must(t, w.Output([]byte("before\r\n")))
	must(t, w.flush(true))
	w.f.Close() // the next write fails as on a full disk
	must(t, w.Output([]byte("after\r\n")))
	if err := w.flush(true); err == nil {
		t.Fatal("flush to a closed file succeeded")
	}
	if w.Err() == nil {
		t.Fatal("Err() = nil after a failed write")
	}
	if err := w.Output([]byte("more")); err == nil {
		t.Error("Output after a write failure succeeded")
	}
	if err := w.Close("normal"); err == nil {
		t.Error("Close after a write failure returned nil")
	}
	m, _ := e.rec.Get(t.Context(), w.ID())
	if m.Status != StatusIncomplete || m.Seal != "" || !strings.Contains(m.EndReason, "recording failed") {
		t.Errorf("meta = %+v, want incomplete, unsealed", m)
	}
	if len(e.audit.ofType("recording.seal")) != 0 {
		t.Error("a failed recording was audited as sealed")
	}
	if !strings.Contains(e.cast(t, w.ID()), "before") {
		t.Error("output flushed before the failure is lost")
	}
}

func TestPurgeAndHold(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Hold = func(u string) bool { return u == "held@example.com" } })
	ctx := t.Context()
	a1 := e.record(t, testMeta(), "alpha words\r\n")
	a2 := e.record(t, testMeta(), "alpha again\r\n")
	mb := testMeta()
	mb.User = "bob@example.com"
	b := e.record(t, mb, "alpha bob\r\n")
	got, err := e.rec.Purge(ctx, "alice@example.com")
	must(t, err)
	if len(got) != 2 {
		t.Fatalf("Purge = %v, want 2 IDs", got)
	}
	for _, id := range []string{a1, a2} {
		if _, err := e.rec.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%s) after purge = %v", id, err)
		}
		if _, err := os.Stat(e.rec.path(id)); !os.IsNotExist(err) {
			t.Errorf("file of %s still there: %v", id, err)
		}
	}
	kvs, _ := e.store.List(ctx, keyTok)
	for _, kv := range kvs {
		if strings.HasSuffix(kv.Key, a1) || strings.HasSuffix(kv.Key, a2) {
			t.Errorf("token %s of a purged recording left", kv.Key)
		}
	}
	if res, _ := e.rec.List(ctx, Filter{Query: "alpha"}); len(res) != 1 || res[0].ID != b {
		t.Errorf("search after purge = %v, want only %s", ids(res), b)
	}
	dels := e.audit.ofType("recording.delete")
	if len(dels) != 2 || dels[0].Reason != "purge" || dels[0].Actor != "" {
		t.Errorf("audit = %+v, want 2 recording.delete events, reason purge, no person", dels)
	}
	if _, err := e.rec.Purge(ctx, "held@example.com"); !errors.Is(err, ErrHold) {
		t.Errorf("Purge(held) = %v, want ErrHold", err)
	}
}

func TestSweepAndRecover(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := newEnv(t, func(c *Config) {
		c.Now = func() time.Time { return clock }
		c.Hold = func(u string) bool { return u == "held@example.com" }
	})
	ctx := t.Context()
	old := e.record(t, testMeta())
	mk := testMeta()
	mk.Target = "keep-forever"
	kept := e.record(t, mk)
	mh := testMeta()
	mh.User = "held@example.com"
	held := e.record(t, mh)
	clock = clock.Add(91 * 24 * time.Hour)
	fresh := e.record(t, testMeta())
	live, err := e.rec.Start(ctx, testMeta())
	must(t, err)
	ret := func(target string) time.Duration {
		if target == "keep-forever" {
			return 0
		}
		return 90 * 24 * time.Hour
	}
	n, err := e.rec.Sweep(ctx, ret)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	left, _ := e.rec.List(ctx, Filter{})
	for _, id := range []string{kept, held, fresh, live.ID()} {
		if !slices.Contains(ids(left), id) {
			t.Errorf("%s deleted by Sweep", id)
		}
	}
	if slices.Contains(ids(left), old) {
		t.Error("old recording not deleted")
	}
	if d := e.audit.ofType("recording.delete"); len(d) != 1 || d[0].Reason != "retention 90d" || d[0].Details["recording"] != old {
		t.Errorf("audit = %+v", d)
	}

	// Recover leaves a writer that this process holds alone; a second
	// recorder on the same data (a restart) marks it incomplete.
	if n, err := e.rec.Recover(ctx); err != nil || n != 0 {
		t.Errorf("Recover with the writer open = %d, %v", n, err)
	}
	r2, err := New(e.rec.cfg)
	must(t, err)
	if n, err := r2.Recover(ctx); err != nil || n != 1 {
		t.Errorf("Recover after restart = %d, %v; want 1", n, err)
	}
	if m, _ := r2.Get(ctx, live.ID()); m.Status != StatusIncomplete {
		t.Errorf("status = %q, want incomplete", m.Status)
	}
}
