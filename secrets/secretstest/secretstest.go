// Package secretstest gives tests a keyring over a fresh random master
// key, so that packages which require one need no key file.
package secretstest

import (
	"crypto/rand"
	"testing"

	"github.com/gatehouse-dev/gatehouse/secrets"
)

// New returns a keyring over one random master key.
func New(t testing.TB) *secrets.Keyring {
	t.Helper()
	key := make([]byte, secrets.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// Shared returns a keyring over a fixed master key, for tests in which
// several components (replicas, a minting helper and a server) share one
// store and so must share the master key, as in production. Never use a
// fixed key outside tests.
func Shared(t testing.TB) *secrets.Keyring {
	t.Helper()
	key := make([]byte, secrets.KeySize)
	for i := range key {
		key[i] = 7
	}
	kr, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
