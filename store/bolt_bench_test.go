package store

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkBoltSet measures one durable write (a bbolt commit with fsync).
func BenchmarkBoltSet(b *testing.B) {
	s, err := OpenBolt(filepath.Join(b.TempDir(), "store.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	val := make([]byte, 256)
	i := 0
	for b.Loop() {
		if err := s.Set(ctx, "session/"+strconv.Itoa(i%1000), val, time.Hour); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkBoltGet measures a read (no disk access once cached).
func BenchmarkBoltGet(b *testing.B) {
	s, err := OpenBolt(filepath.Join(b.TempDir(), "store.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	if err := s.Set(ctx, "session/x", make([]byte, 256), time.Hour); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Get(ctx, "session/x"); err != nil {
			b.Fatal(err)
		}
	}
}
