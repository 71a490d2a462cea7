package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/e2e/harness"
	"github.com/google/go-cmp/cmp"
)

// TestDemoConfigValid renders configs/demo.yaml the way `make demo` does
// and loads it with the real config loader (what check-config runs).
func TestDemoConfigValid(t *testing.T) {
	dir := t.TempDir()
	if code := run([]string{"init", "-dir", dir, "-template", "../../configs/demo.yaml", "-login", "gh-demo"}, os.Stdout, os.Stderr); code != 0 {
		t.Fatalf("demosetup init exit code %d", code)
	}
	cfg, err := config.LoadFile(filepath.Join(dir, "gatehouse.yaml"))
	if err != nil {
		t.Fatalf("rendered demo config is invalid:\n%v", err)
	}
	env := readEnv(t, filepath.Join(dir, "demo.env"))
	if cfg.PublicURL != env["PUBLIC_URL"] || !strings.HasPrefix(cfg.PublicURL, "https://gate.localhost:") {
		t.Errorf("public_url = %q, env PUBLIC_URL = %q", cfg.PublicURL, env["PUBLIC_URL"])
	}
	if cfg.TLS.Mode != config.TLSModeSelfSigned {
		t.Errorf("tls.mode = %q, want self_signed", cfg.TLS.Mode)
	}
	if len(cfg.Routes) != 1 || cfg.Routes[0].Host != "app.localhost" || cfg.Routes[0].Upstream != "http://127.0.0.1:"+env["UPSTREAM_PORT"] {
		t.Errorf("routes = %+v", cfg.Routes)
	}
	if len(cfg.Targets) != 1 || cfg.Targets[0].HostKey != env["SSHD_HOST_KEY"] || cfg.Targets[0].Logins[0] != "gh-demo" {
		t.Errorf("targets = %+v", cfg.Targets)
	}
	ports := map[string]bool{}
	for _, k := range []string{"HTTPS_PORT", "SSH_PORT", "ADMIN_PORT", "DEX_PORT", "UPSTREAM_PORT", "SSHD_PORT"} {
		if env[k] == "" || ports[env[k]] {
			t.Errorf("%s = %q: missing or repeated", k, env[k])
		}
		ports[env[k]] = true
	}
	for _, addr := range []string{cfg.Listen.HTTPS, cfg.Listen.SSH, cfg.Listen.Admin} {
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("listen address %q is not loopback", addr)
		}
	}

	// Dex's config has the demo user with groups and a bcrypt hash, never
	// the password itself; the redirect URI is the portal's callback.
	dexCfg, err := os.ReadFile(env["DEX_CONFIG"])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(dexCfg, []byte(env["DEMO_PASSWORD"])) {
		t.Errorf("Dex config contains the plain demo password")
	}
	var dex struct {
		StaticPasswords []struct {
			Email, Hash string
			Groups      []string
		}
		StaticClients []struct{ RedirectURIs []string }
	}
	if err := json.Unmarshal(dexCfg, &dex); err != nil {
		t.Fatal(err)
	}
	if len(dex.StaticPasswords) != 1 || !strings.HasPrefix(dex.StaticPasswords[0].Hash, "$2a$10$") {
		t.Fatalf("staticPasswords = %+v", dex.StaticPasswords)
	}
	if diff := cmp.Diff([]string{"engineering", "sre"}, dex.StaticPasswords[0].Groups); diff != "" {
		t.Errorf("demo user's groups (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{env["PUBLIC_URL"] + "/auth/callback"}, dex.StaticClients[0].RedirectURIs); diff != "" {
		t.Errorf("redirect URIs (-want +got):\n%s", diff)
	}
	for _, f := range []string{env["CLIENT_SECRET_FILE"], env["CLIENT_KEY"], filepath.Join(dir, "demo.env")} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", f, fi.Mode().Perm(), err)
		}
	}
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		env[k] = strings.ReplaceAll(strings.Trim(v, "'"), `'\''`, "'")
	}
	return env
}

func TestRender(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "a: ${A}\nb: $A\n", want: "a: 1\nb: 1\n"},
		{in: "a: ${NOPE}", wantErr: "NOPE"},
	}
	for _, tt := range tests {
		got, err := render(tt.in, map[string]string{"A": "1"})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("render(%q) error = %v, want one naming %s", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("render(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestShellEnvQuotes(t *testing.T) {
	got := shellEnv(map[string]string{"B": "it's $HOME", "A": "x"})
	want := "A='x'\nB='it'\\''s $HOME'\n"
	if got != want {
		t.Errorf("shellEnv = %q, want %q", got, want)
	}
}

func TestSPKIMatchesHarness(t *testing.T) {
	ca := harness.NewCA(t)
	var out bytes.Buffer
	if err := cmdSPKI([]string{ca.CAFile}, &out); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != ca.SPKIHash() {
		t.Errorf("spki = %q, want %q", got, ca.SPKIHash())
	}
}
