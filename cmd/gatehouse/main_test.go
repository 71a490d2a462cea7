package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeConfig writes yaml to a file in a temp dir and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// validYAML is a minimal valid config with its data_dir in dir.
func validYAML(dir string) string {
	return `public_url: https://gate.test
listen:
  https: "127.0.0.1:0"
  admin: "127.0.0.1:0"
tls:
  mode: self_signed
data_dir: ` + dir + `
log: {format: text, level: debug}
`
}

func TestRun(t *testing.T) {
	// t.TempDir itself is 0755, which serve refuses as a data_dir.
	good := writeConfig(t, validYAML(filepath.Join(t.TempDir(), "data")))
	bad := writeConfig(t, `public_url: https://gate.test
listen: {https: ":8443"}
tls: {mode: self_signed}
data_dir: `+filepath.Join(t.TempDir(), "data")+`
sso: {issuer: "https://idp.test", client_id: gh, client_secret_file: /etc/secret}
routes:
  - name: grafana
    host: grafana.test
    upstream: ftp://10.0.0.5
    allow: {groups: [eng]}
  - name: wiki
    host: Wiki.test
    upstream: http://10.0.0.6
    allow: {groups: [eng]}
`)
	typo := writeConfig(t, validYAML(filepath.Join(t.TempDir(), "data"))+"routes:\n  - name: wiki\n    hosst: wiki.test\n")
	files := writeConfig(t, `public_url: https://gate.test
listen: {https: ":8443"}
tls: {mode: files, cert_file: /nonexistent/tls.crt, key_file: /nonexistent/tls.key}
data_dir: /var/lib/gatehouse
`)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{"no command", nil, 2, nil, []string{"Usage: gatehouse"}},
		{"help", []string{"help"}, 0, []string{"serve --config FILE", "check-config --config FILE", "audit verify --config FILE"}, nil},
		{"unknown command", []string{"frobnicate"}, 2, nil, []string{`unknown command "frobnicate"`, "Usage: gatehouse"}},
		{"check-config valid", []string{"check-config", "--config", good}, 0, []string{"config OK"}, nil},
		{"check-config invalid", []string{"check-config", "--config", bad}, 1, nil, []string{
			bad + ":9: routes[0].upstream: scheme must be http or https",
			bad + ":12: routes[1].host: must be a lowercase DNS name without port",
			bad + ":5: sso.client_secret_file: open /etc/secret: no such file or directory",
			bad + ": 3 problem(s)",
		}},
		{"check-config unknown key", []string{"check-config", "--config", typo}, 1, nil, []string{
			typo + `:11: routes[0].hosst: unknown key (did you mean "host"?)`,
		}},
		{"check-config unreadable cert files", []string{"check-config", "--config", files}, 1, nil, []string{
			files + ":3: tls.cert_file: open /nonexistent/tls.crt: no such file or directory",
			files + ":3: tls.key_file: open /nonexistent/tls.key: no such file or directory",
		}},
		{"check-config missing file", []string{"check-config", "--config", "/nonexistent/g.yaml"}, 1, nil, []string{"/nonexistent/g.yaml: read config"}},
		{"check-config without --config", []string{"check-config"}, 2, nil, []string{"usage: gatehouse check-config --config FILE"}},
		{"check-config positional argument", []string{"check-config", "--config", good, "extra"}, 2, nil, []string{"usage:"}},
		{"check-config bad flag", []string{"check-config", "--cfg", good}, 2, nil, []string{"flag provided but not defined"}},
		{"serve invalid config", []string{"serve", "--config", bad}, 1, nil, []string{
			bad + ":9: routes[0].upstream: scheme must be http or https",
			"refusing to start",
		}},
		{"audit without verify", []string{"audit"}, 2, nil, []string{"usage: gatehouse audit verify"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("run(%q) = %d, want %d\nstdout: %s\nstderr: %s", tt.args, code, tt.wantCode, &stdout, &stderr)
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, &stdout)
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, &stderr)
				}
			}
		})
	}
}

func TestEnsureDataDir(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(base, "loose")
	if err := os.Mkdir(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	tight := filepath.Join(base, "tight")
	if err := os.Mkdir(tight, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		dir     string
		wantErr string
	}{
		{"created", filepath.Join(base, "new", "data"), ""},
		{"existing 0700", tight, ""},
		{"group and others can read", loose, "has mode 0755"},
		{"not a directory", file, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ensureDataDir(tt.dir)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ensureDataDir = %v", err)
				}
				fi, err := os.Stat(tt.dir)
				if err != nil {
					t.Fatal(err)
				}
				if perm := fi.Mode().Perm(); perm != 0o700 {
					t.Errorf("mode = %04o, want 0700", perm)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ensureDataDir = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
