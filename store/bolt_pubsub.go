package store

import (
	"bytes"
	"context"
	"sync"
)

// subBuffer is how many messages a subscriber may fall behind before
// Publish waits for it.
const subBuffer = 64

// subscription is one Subscribe call's delivery channel.
type subscription struct {
	ch       chan []byte
	done     chan struct{} // closed when the subscription ends
	doneOnce sync.Once

	mu     sync.Mutex // held while sending on ch; guards closing ch and closed
	closed bool
}

func newSubscription() *subscription {
	return &subscription{ch: make(chan []byte, subBuffer), done: make(chan struct{})}
}

// end stops the subscription: it unblocks any sender, then closes ch.
func (s *subscription) end() {
	s.doneOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

// send delivers msg, waiting while the subscriber's buffer is full until the
// subscription ends or ctx is done.
func (s *subscription) send(ctx context.Context, msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	select {
	case s.ch <- msg:
		return nil
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Publish delivers a copy of msg to every current subscriber of channel in
// this process (Bolt serves a single replica). It waits for a subscriber
// whose buffer is full rather than drop the message, so a slow subscriber
// slows publishers down; ctx bounds the wait.
func (b *Bolt) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	subs := make([]*subscription, 0, len(b.subs[channel]))
	for s := range b.subs[channel] {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		if err := s.send(ctx, bytes.Clone(msg)); err != nil {
			return err
		}
	}
	return nil
}

// Subscribe delivers the messages published on channel until ctx ends or
// the store is closed; the returned channel is closed then.
func (b *Bolt) Subscribe(ctx context.Context, channel string) (<-chan []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := newSubscription()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	set := b.subs[channel]
	if set == nil {
		set = make(map[*subscription]struct{})
		b.subs[channel] = set
	}
	set[s] = struct{}{}
	b.mu.Unlock()
	// The watcher ends the subscription when ctx ends; Close ends it too,
	// which releases the watcher through s.done.
	go func() {
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		b.unsubscribe(channel, s)
	}()
	return s.ch, nil
}

func (b *Bolt) unsubscribe(channel string, s *subscription) {
	b.mu.Lock()
	if set := b.subs[channel]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(b.subs, channel)
		}
	}
	b.mu.Unlock()
	s.end()
}
