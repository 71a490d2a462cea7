package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// redisSub is one Subscribe call: its own go-redis PubSub (one connection,
// which go-redis re-establishes and re-subscribes after a network failure)
// and the goroutine that forwards its messages.
type redisSub struct {
	ps       *redis.PubSub
	done     chan struct{} // closed by end
	doneOnce sync.Once
}

// end stops the forwarding goroutine, which then closes the caller's
// channel, and releases the connection.
func (s *redisSub) end() {
	s.doneOnce.Do(func() {
		close(s.done)
		s.ps.Close()
	})
}

// Publish sends msg to every subscriber of channel on every replica.
func (r *Redis) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.isClosed() {
		return ErrClosed
	}
	if err := r.c.Publish(ctx, r.key(channel), msg).Err(); err != nil {
		return mapRedisErr("publish", err)
	}
	return nil
}

// Subscribe delivers the messages published on channel until ctx ends or
// the store is closed; the returned channel is closed then. It returns once
// Redis has confirmed the subscription. Redis does not store messages: one
// published while the connection is down is lost, which is why consumers
// that must not miss one (locks) also re-check the store periodically.
func (r *Redis) Subscribe(ctx context.Context, channel string) (<-chan []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.isClosed() {
		return nil, ErrClosed
	}
	ps := r.c.Subscribe(ctx, r.key(channel))
	// The first reply is the subscription's confirmation; waiting for it
	// makes the subscription active when Subscribe returns.
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, mapRedisErr("subscribe", err)
	}
	s := &redisSub{ps: ps, done: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		s.end()
		return nil, ErrClosed
	}
	r.subs[s] = struct{}{}
	r.mu.Unlock()

	in := ps.Channel(redis.WithChannelSize(subBuffer))
	out := make(chan []byte)
	go func() {
		defer close(out)
		defer r.unsubscribe(s)
		for {
			select {
			case m, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- []byte(m.Payload):
				case <-ctx.Done():
					return
				case <-s.done:
					return
				}
			case <-ctx.Done():
				return
			case <-s.done:
				return
			}
		}
	}()
	return out, nil
}

// unsubscribe forgets s and ends it.
func (r *Redis) unsubscribe(s *redisSub) {
	r.mu.Lock()
	delete(r.subs, s)
	r.mu.Unlock()
	s.end()
}

// String describes the store for logs, without credentials.
func (r *Redis) String() string {
	return fmt.Sprintf("redis %s (prefix %q)", r.desc, r.prefix)
}
