package main

import (
	"context"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// closeWebSockets ends the live WebSockets of a person who signed out or
// was locked: a tunnel opened before must not outlive the session.
func (s *server) closeWebSockets(email string) {
	if s.front == nil {
		return
	}
	if n := s.front.CloseWebSockets(email); n > 0 {
		s.logger.Info("Closed the WebSockets of a person whose session ended.", "user", email, "count", n)
	}
}

// closeWebSocketsOnLock ends a locked person's WebSockets when a lock is
// published on any replica (the SSH bastion listens on the same channel),
// until ctx ends.
func (s *server) closeWebSocketsOnLock(ctx context.Context) {
	if s.front == nil {
		return
	}
	for ctx.Err() == nil {
		msgs, err := s.store.Subscribe(ctx, identity.LockChannel)
		if err != nil {
			s.logger.ErrorContext(ctx, "Cannot subscribe to the lock channel; retrying.", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for m := range msgs {
			s.closeWebSockets(string(m))
		}
	}
}
