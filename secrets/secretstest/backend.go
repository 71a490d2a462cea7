package secretstest

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"sync"

	"github.com/gatehouse-dev/gatehouse/secrets"
)

// Backend is an in-memory secrets.Backend with the store's semantics
// (SetNX is atomic), standing for one store that several replicas share.
type Backend struct {
	mu sync.Mutex // guards m
	m  map[string][]byte
}

var _ secrets.Backend = (*Backend)(nil)

// NewBackend returns an empty Backend.
func NewBackend() *Backend { return &Backend{m: map[string][]byte{}} }

// Get returns name's value or an error wrapping fs.ErrNotExist.
func (b *Backend) Get(_ context.Context, name string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return bytes.Clone(v), nil
}

// SetNX stores value under name unless it has one.
func (b *Backend) SetNX(_ context.Context, name string, value []byte) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[name]; ok {
		return false, nil
	}
	b.m[name] = bytes.Clone(value)
	return true, nil
}

// Set stores value under name.
func (b *Backend) Set(_ context.Context, name string, value []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[name] = bytes.Clone(value)
	return nil
}

// Values returns a copy of every stored value by name, for tests that scan
// what the store holds.
func (b *Backend) Values() map[string][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string][]byte, len(b.m))
	for k, v := range b.m {
		out[k] = bytes.Clone(v)
	}
	return out
}
