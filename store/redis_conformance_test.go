package store_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

// TestRedisConformance runs the conformance suite against Debian's
// redis-server (make test installs it; without it the test fails with the
// install hint). One server serves the whole suite: each test's store gets
// its own key prefix, which isolates keys and pub/sub channels alike, and
// proves that the prefix does. Expiry is Redis's own, in real time.
func TestRedisConformance(t *testing.T) {
	srv := harness.StartRedis(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Store {
		r, err := store.OpenRedis(store.RedisOptions{
			Addr:   srv.Addr,
			Prefix: fmt.Sprintf("conformance%d:", n.Add(1)),
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}
