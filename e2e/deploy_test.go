package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// This file checks the deployment files in deploy/ and the example configs
// in configs/: the systemd unit with systemd-analyze, the Kubernetes
// manifests and the Containerfile by reading them, and the configs with the
// real `gatehouse check-config`. (The container image itself is not built
// here: CI has no container runtime.)

// unitPath is the systemd unit, relative to the repository root.
const unitPath = "deploy/gatehouse.service"

// installedBinary is the path the unit runs the binary from.
const installedBinary = "/usr/local/bin/gatehouse"

// testUnit writes a copy of the unit whose ExecStart and ExecStartPre run
// the binary built for this test: `systemd-analyze verify` checks that the
// executable exists, and /usr/local/bin/gatehouse does not on a CI machine.
// Nothing else in the copy differs from deploy/gatehouse.service.
func testUnit(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(harness.RepoRoot(t), unitPath))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "ExecStart="+installedBinary+" ") {
		t.Fatalf("%s: ExecStart does not run %s", unitPath, installedBinary)
	}
	unit := strings.ReplaceAll(string(data), installedBinary, harness.Binary(t))
	path := filepath.Join(t.TempDir(), "gatehouse.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSystemdUnitVerify runs `systemd-analyze verify` on the unit; any
// output at all (unknown keys, bad values, missing executables) fails.
func TestSystemdUnitVerify(t *testing.T) {
	analyze := harness.RequireTool(t, "systemd-analyze")
	out := runToolCombined(t, analyze, "verify", "--man=no", testUnit(t))
	if strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify %s printed:\n%s", unitPath, out)
	}
}

// maxExposure is the highest `systemd-analyze security` exposure score the
// unit may have (0 is fully locked down, 10 is unprotected; below 2 is "OK").
const maxExposure = 2.0

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`)

// TestSystemdUnitSecurity scores the unit's sandbox with systemd's own
// `systemd-analyze security --offline`.
func TestSystemdUnitSecurity(t *testing.T) {
	analyze := harness.RequireTool(t, "systemd-analyze")
	out := runToolCombined(t, analyze, "security", "--offline=true", "--no-pager", testUnit(t))
	m := exposureRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in systemd-analyze security output:\n%s", out)
	}
	score, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security exposure: %.1f", score)
	if score > maxExposure {
		t.Errorf("exposure level %.1f > %.1f:\n%s", score, maxExposure, out)
	}
}

// TestSystemdUnitHardening checks that the unit sets each hardening option
// the deployment promises (verify accepts a unit without any of them).
func TestSystemdUnitHardening(t *testing.T) {
	f, err := os.Open(filepath.Join(harness.RepoRoot(t), unitPath))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			got[k] = append(got[k], v)
		}
	}
	want := map[string][]string{
		"User":                    {"gatehouse"},
		"Group":                   {"gatehouse"},
		"NoNewPrivileges":         {"yes"},
		"ProtectSystem":           {"strict"},
		"ReadWritePaths":          {"/var/lib/gatehouse"},
		"StateDirectory":          {"gatehouse"},
		"CapabilityBoundingSet":   {"CAP_NET_BIND_SERVICE"},
		"AmbientCapabilities":     {"CAP_NET_BIND_SERVICE"},
		"PrivateTmp":              {"yes"},
		"PrivateDevices":          {"yes"},
		"ProtectHome":             {"yes"},
		"SystemCallFilter":        {"@system-service", "~@privileged"},
		"SystemCallArchitectures": {"native"},
		"RestrictAddressFamilies": {"AF_INET AF_INET6 AF_UNIX"},
		"RestrictNamespaces":      {"yes"},
		"RestrictSUIDSGID":        {"yes"},
		"MemoryDenyWriteExecute":  {"yes"},
		"LockPersonality":         {"yes"},
		"ProtectKernelTunables":   {"yes"},
		"ProtectKernelModules":    {"yes"},
		"ProtectControlGroups":    {"yes"},
		"UMask":                   {"0077"},
		"ExecReload":              {"/bin/kill -HUP $MAINPID"},
		"KillSignal":              {"SIGTERM"},
	}
	for k, v := range want {
		if diff := cmp.Diff(v, got[k]); diff != "" {
			t.Errorf("%s: %s (-want +got):\n%s", unitPath, k, diff)
		}
	}
	if got["ExecStart"] == nil || !strings.HasPrefix(got["ExecStart"][0], installedBinary+" serve --config ") {
		t.Errorf("%s: ExecStart = %q, want %s serve --config FILE", unitPath, got["ExecStart"], installedBinary)
	}
}

// TestContainerfile checks the image definition: a static build and a
// distroless (or scratch) final stage that runs as a non-root user.
func TestContainerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(harness.RepoRoot(t), "deploy", "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var froms, users []string
	var runs strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
		case "USER":
			users = append(users, f[1])
		case "RUN":
			runs.WriteString(line + "\n")
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Containerfile has %d stages, want a build stage and a final stage", len(froms))
	}
	final := froms[len(froms)-1]
	if final != "scratch" && !strings.HasPrefix(final, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s, want distroless/static or scratch", final)
	}
	if len(users) == 0 || (users[len(users)-1] != "65532" && users[len(users)-1] != "65532:65532") {
		t.Errorf("USER = %q, want 65532 last", users)
	}
	for _, w := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/gatehouse"} {
		if !strings.Contains(runs.String(), w) {
			t.Errorf("build stage does not contain %q", w)
		}
	}
}

// TestExampleConfigs runs `gatehouse check-config` on every example config
// a user may start from. Their file references (/etc/gatehouse/...) point
// into a temporary directory with a real certificate and key and random
// secrets, since check-config reads the certificate files.
func TestExampleConfigs(t *testing.T) {
	root := harness.RepoRoot(t)
	configs := map[string]string{}
	for _, name := range []string{"configs/single-host.yaml", "configs/ha.yaml"} {
		data, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		configs[name] = string(data)
	}
	configs["deploy/kubernetes/configmap.yaml"] = k8sConfig(t)
	ca := harness.NewCA(t)
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gatehouse.yaml")
			if err := os.WriteFile(path, []byte(withFiles(t, ca, cfg)), 0o600); err != nil {
				t.Fatal(err)
			}
			r := harness.RunBinary(t, "check-config", "--config", path)
			if r.ExitCode != 0 {
				t.Errorf("gatehouse check-config %s: exit %d\n%s%s", name, r.ExitCode, r.Stdout, r.Stderr)
			}
		})
	}
}

var etcFileRE = regexp.MustCompile(`/etc/gatehouse/[A-Za-z0-9/_.-]+`)

// withFiles rewrites every /etc/gatehouse/... path in cfg into a temporary
// directory and creates the file there: *.crt and *.key as a matching pair
// from ca (master.key: a master key, base64 of 32 random bytes), anything
// else as a random secret.
func withFiles(t *testing.T, ca *harness.CA, cfg string) string {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, "gate.example.com")
	for _, p := range etcFileRE.FindAllString(cfg, -1) {
		dst := filepath.Join(dir, strings.TrimPrefix(p, "/etc/gatehouse/"))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			t.Fatal(err)
		}
		var data []byte
		var err error
		switch ext := filepath.Ext(p); {
		case filepath.Base(p) == "master.key":
			b := make([]byte, 32)
			rand.Read(b)
			data = []byte(base64.StdEncoding.EncodeToString(b) + "\n")
		case ext == ".crt" || ext == ".pem":
			data, err = os.ReadFile(certFile)
		case ext == ".key":
			data, err = os.ReadFile(keyFile)
		default:
			b := make([]byte, 32)
			rand.Read(b)
			data = []byte(hex.EncodeToString(b) + "\n")
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return strings.ReplaceAll(cfg, "/etc/gatehouse/", dir+"/")
}

// runToolCombined runs a tool with a one-minute deadline and returns its
// stdout and stderr together; a non-zero exit fails the test.
func runToolCombined(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := commandCombined(time.Minute, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}
