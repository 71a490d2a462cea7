package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// roundTrips counts what a go-redis client sends: single commands and
// pipelines, each one round trip to the server.
type roundTrips struct{ singles, pipelines atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "hello" { // opening a pool connection, not the call's
			r.singles.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.pipelines.Add(1)
		return next(ctx, cmds)
	}
}

// TestRedisManyCallsAreOneRoundTrip: GetMany and SetMany cost one round
// trip per 500 keys, not one per key. (MONITOR and INFO commandstats,
// which bench/ha reads, list a pipeline's commands one by one.)
func TestRedisManyCallsAreOneRoundTrip(t *testing.T) {
	srv := harness.StartRedis(t)
	r, err := OpenRedis(RedisOptions{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	var rt roundTrips
	r.c.AddHook(&rt)
	ctx := t.Context()
	check := func(what string, singles, pipelines int64) {
		t.Helper()
		if s, p := rt.singles.Swap(0), rt.pipelines.Swap(0); s != singles || p != pipelines {
			t.Errorf("%s: %d single commands and %d pipelines, want %d and %d", what, s, p, singles, pipelines)
		}
	}
	kvs := make([]KV, 501)
	keys := make([]string, len(kvs))
	for i := range kvs {
		keys[i] = fmt.Sprintf("lock/%d", i)
		kvs[i] = KV{Key: keys[i], Value: []byte("v")}
	}
	if err := r.SetMany(ctx, kvs[:3], 0); err != nil {
		t.Fatal(err)
	}
	check("SetMany of 3", 0, 1)
	if _, err := r.GetMany(ctx, keys[:3]...); err != nil {
		t.Fatal(err)
	}
	check("GetMany of 3", 0, 1)
	if err := r.SetMany(ctx, kvs, 0); err != nil {
		t.Fatal(err)
	}
	check("SetMany of 501", 0, 2)
	if _, err := r.GetMany(ctx, keys...); err != nil {
		t.Fatal(err)
	}
	check("GetMany of 501", 0, 2)
}
