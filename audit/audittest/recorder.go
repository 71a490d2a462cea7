// Package audittest holds an in-memory audit sink for the tests of the
// packages that emit audit events.
package audittest

import (
	"context"
	"sync"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// Recorder keeps the events it is given, in order. It is safe for
// concurrent use; the zero value is ready.
type Recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

// Log keeps e.
func (r *Recorder) Log(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

// Find returns the events kept so far for which match is true, in order.
func (r *Recorder) Find(match func(audit.Event) bool) []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []audit.Event
	for _, e := range r.events {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// Events returns every event kept so far, in order.
func (r *Recorder) Events() []audit.Event {
	return r.Find(func(audit.Event) bool { return true })
}
