package store_test

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

// fakeClock is a settable clock for one store.
type fakeClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestBoltConformance(t *testing.T) {
	var clocks sync.Map // *store.Bolt -> *fakeClock
	storetest.RunHarness(t, storetest.Harness{
		Open: func(t *testing.T) store.Store {
			c := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
			b, err := store.OpenBoltWith(filepath.Join(t.TempDir(), "store.db"), store.BoltOptions{
				Now: c.Now,
				// A fast sweeper runs alongside every test, deleting
				// keys as the fake clock expires them.
				SweepInterval: 5 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			clocks.Store(b, c)
			return b
		},
		Advance: func(s store.Store, d time.Duration) {
			c, _ := clocks.Load(s.(*store.Bolt))
			c.(*fakeClock).Advance(d)
		},
	})
}
