package recording

import (
	"context"
	"fmt"
	"sync"
)

// watchBuffer is how many lines a live viewer may lag behind; a viewer
// further behind is disconnected (its channel closed) rather than slowing
// the session or growing memory.
const watchBuffer = 256

// watcher is one live viewer of a writer.
type watcher struct {
	ch   chan []byte
	once sync.Once
}

func (wt *watcher) stop() { wt.once.Do(func() { close(wt.ch) }) }

// broadcast sends line to every viewer without blocking. w.mu is held.
func (w *Writer) broadcast(line []byte) {
	for wt := range w.watchers {
		select {
		case wt.ch <- line:
		default:
			delete(w.watchers, wt)
			wt.stop()
		}
	}
}

// Watch streams the live output of a session recorded on this replica as
// asciicast v2 lines, starting with the header line. The channel is closed
// when the session ends, when ctx ends, or when the viewer falls behind.
func (r *Recorder) Watch(ctx context.Context, id string) (<-chan []byte, error) {
	r.mu.Lock()
	w := r.live[id]
	r.mu.Unlock()
	if w == nil {
		m, err := r.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if m.Status == StatusLive && m.Replica != r.cfg.Replica {
			return nil, fmt.Errorf("recording: %s is live on replica %q, not this one", id, m.Replica)
		}
		return nil, fmt.Errorf("recording: %s is not live", id)
	}
	h := newCastHeader(w.meta)
	line, err := marshalLine(h)
	if err != nil {
		return nil, err
	}
	wt := &watcher{ch: make(chan []byte, watchBuffer)}
	wt.ch <- line
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, fmt.Errorf("recording: %s is not live", id)
	}
	if w.watchers == nil {
		w.watchers = map[*watcher]struct{}{}
	}
	w.watchers[wt] = struct{}{}
	w.mu.Unlock()
	go func() {
		<-ctx.Done()
		w.mu.Lock()
		delete(w.watchers, wt)
		w.mu.Unlock()
		wt.stop()
	}()
	return wt.ch, nil
}
