package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"sync"
	"time"
)

// Session ticket keys are Gatehouse's own: a fresh random key every
// ticketRotateEvery, and older keys kept for decryption only until
// ticketKeyLifetime has passed since they were made. A leaked key therefore
// opens at most ticketKeyLifetime of recorded TLS 1.2 sessions (TLS 1.3
// resumption still runs an (EC)DHE exchange). crypto/tls's automatic keys
// would rotate daily and live for a week; ours are shorter.
const (
	ticketRotateEvery = time.Hour
	ticketKeyLifetime = 12 * time.Hour
)

// ticketRotator owns the session ticket keys of one tls.Config.
type ticketRotator struct {
	conf  *tls.Config
	every time.Duration
	keep  int // number of keys kept: the current one plus older ones

	mu   sync.Mutex // guards keys
	keys [][32]byte // newest first
}

// newTicketRotator installs a first key in conf and returns its rotator.
func newTicketRotator(conf *tls.Config) *ticketRotator {
	t := &ticketRotator{
		conf:  conf,
		every: ticketRotateEvery,
		keep:  int(ticketKeyLifetime / ticketRotateEvery),
	}
	t.rotate()
	return t
}

// rotate makes a new current key and drops keys past their lifetime.
// crypto/rand.Read never fails (it crashes the program first).
func (t *ticketRotator) rotate() {
	var k [32]byte
	_, _ = rand.Read(k[:])
	t.mu.Lock()
	defer t.mu.Unlock()
	t.keys = append([][32]byte{k}, t.keys...)
	if len(t.keys) > t.keep {
		clear(t.keys[t.keep:])
		t.keys = t.keys[:t.keep]
	}
	t.conf.SetSessionTicketKeys(t.keys)
}

// run rotates every t.every until ctx ends.
func (t *ticketRotator) run(ctx context.Context) {
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.rotate()
		}
	}
}
