package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"
)

// deadlineRecorder counts write-deadline updates, as ResponseController
// finds them on the writer.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	deadlines []time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.deadlines = append(d.deadlines, t)
	return nil
}

// TestExtendWriteCoalesced: many writes within a second move the write
// deadline once; a write after a pause moves it again, and the deadline
// is never less than frontWriteIdle-extendWriteEvery ahead of a write.
func TestExtendWriteCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
		w := newHSTSWriter(rec, httptest.NewRequest(http.MethodGet, "https://app.test/", nil))
		for range 100 {
			_, _ = w.Write([]byte("x"))
		}
		w.extendWrite() // as Front.ServeHTTP does after the handler
		if len(rec.deadlines) != 1 {
			t.Fatalf("100 writes and the final extend set %d deadlines, want 1", len(rec.deadlines))
		}
		time.Sleep(extendWriteEvery / 2)
		_, _ = w.Write([]byte("x"))
		if len(rec.deadlines) != 1 {
			t.Errorf("a write %s later set %d deadlines, want still 1", extendWriteEvery/2, len(rec.deadlines))
		}
		time.Sleep(extendWriteEvery)
		_, _ = w.Write([]byte("x"))
		if len(rec.deadlines) != 2 {
			t.Fatalf("a write %s later set %d deadlines, want 2", 3*extendWriteEvery/2, len(rec.deadlines))
		}
		if got, want := rec.deadlines[1], time.Now().Add(frontWriteIdle); !got.Equal(want) {
			t.Errorf("deadline = %v, want %v", got, want)
		}
	})
}
