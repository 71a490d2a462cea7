package store_test

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
	"github.com/gatehouse-dev/gatehouse/store"
)

// TestRedisThroughSentinel finds the master through a real Redis Sentinel
// and checks that what the store writes lands on that master.
func TestRedisThroughSentinel(t *testing.T) {
	master := harness.StartRedisWith(t, harness.RedisOptions{RequirePassword: true})
	s := harness.StartSentinel(t, master, "gatehouse")
	via := openRedis(t, store.RedisOptions{MasterName: "gatehouse", SentinelAddrs: []string{s.Addr}, Password: master.Password, Prefix: "gh:"})
	if err := via.Set(t.Context(), "k", []byte("v"), 0); err != nil {
		t.Fatalf("Set through sentinel: %v", err)
	}
	direct := openRedis(t, store.RedisOptions{Addr: master.Addr, Password: master.Password, Prefix: "gh:"})
	if v, err := direct.Get(t.Context(), "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get on the master = %q, %v; want what was written through the sentinel", v, err)
	}
	if _, err := store.OpenRedis(store.RedisOptions{MasterName: "nobody", SentinelAddrs: []string{s.Addr}}); err == nil {
		t.Error("OpenRedis found a master the sentinel does not monitor")
	}
}
