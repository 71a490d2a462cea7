package main

import (
	"log/slog"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/secrets"
)

// testKeyring opens cfg's master keyring as serve and the CLI do, so keys
// a test makes open in the commands it runs.
func testKeyring(t testing.TB, cfg *config.Config) *secrets.Keyring {
	t.Helper()
	kr, err := openSecrets(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
