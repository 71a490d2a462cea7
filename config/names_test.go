package config

import (
	"strings"
	"testing"
)

func TestNameRules(t *testing.T) {
	logins := map[string]bool{
		"ubuntu": true, "_svc.deploy-1": true, strings.Repeat("a", 32): true,
		"": false, "Ubuntu": false, "1ubuntu": false, "root;rm": false, "a b": false, strings.Repeat("a", 33): false,
	}
	for s, want := range logins {
		if got := ValidLogin(s); got != want {
			t.Errorf("ValidLogin(%q) = %v, want %v", s, got, want)
		}
	}
	names := map[string]bool{
		"prod-db": true, "a": true, "web2": true, strings.Repeat("a", 63): true,
		"": false, "-prod": false, "prod-": false, "Prod": false, "prod.example.com": false, "prod:22": false, strings.Repeat("a", 64): false,
	}
	for s, want := range names {
		if got := ValidTargetName(s); got != want {
			t.Errorf("ValidTargetName(%q) = %v, want %v", s, got, want)
		}
	}
}
