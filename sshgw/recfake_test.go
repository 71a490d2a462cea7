package sshgw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/recording"
)

// fakeRecorder records in memory what the gateway sends to a recording.
type fakeRecorder struct {
	mu        sync.Mutex
	recs      []*fakeRec
	startErr  error // if set, Start fails
	failAfter int   // if > 0, Output fails once a recording would hold more bytes (disk full)
}

// fakeRec is one recording.
type fakeRec struct {
	mu        sync.Mutex
	id        string
	meta      recording.Meta
	out       bytes.Buffer
	events    []recording.Event
	resizes   [][2]int
	closed    bool
	reason    string
	err       error
	failAfter int
}

var _ Recorder = (*fakeRecorder)(nil)

func (f *fakeRecorder) Start(_ context.Context, m recording.Meta) (SessionRecording, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return nil, f.startErr
	}
	m.ID = fmt.Sprintf("rec%d", len(f.recs)+1)
	m.Status = recording.StatusLive
	r := &fakeRec{id: m.ID, meta: m, failAfter: f.failAfter}
	f.recs = append(f.recs, r)
	return r, nil
}

// all returns the recordings started so far.
func (f *fakeRecorder) all() []*fakeRec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*fakeRec(nil), f.recs...)
}

// waitClosed waits until n recordings exist and all are closed.
func (f *fakeRecorder) waitClosed(t *testing.T, n int) []*fakeRec {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs := f.all()
		done := len(recs) >= n
		for _, r := range recs {
			done = done && r.isClosed()
		}
		if done {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d closed recordings, have %d: %+v", n, len(recs), recs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var errFakeClosed = errors.New("fake recording: closed")

func (r *fakeRec) ID() string { return r.id }

func (r *fakeRec) Output(p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return errFakeClosed
	case r.err != nil:
		return r.err
	case r.failAfter > 0 && r.out.Len()+len(p) > r.failAfter:
		r.err = errors.New("no space left on device")
		return r.err
	}
	r.out.Write(p)
	return nil
}

func (r *fakeRec) Resize(cols, rows int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errFakeClosed
	}
	r.resizes = append(r.resizes, [2]int{cols, rows})
	return nil
}

func (r *fakeRec) Event(e recording.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errFakeClosed
	}
	r.events = append(r.events, e)
	return nil
}

func (r *fakeRec) Close(reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errFakeClosed
	}
	r.closed, r.reason = true, reason
	return nil
}

func (r *fakeRec) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *fakeRec) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *fakeRec) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// eventsOf returns the recording's events of type typ.
func (r *fakeRec) eventsOf(typ string) []recording.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recording.Event
	for _, e := range r.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (r *fakeRec) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("{%s %s closed=%v reason=%q events=%v}", r.id, r.meta.Kind, r.closed, r.reason, r.events)
}
