package harness

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// modulePath is the module whose root RepoRoot looks for.
const modulePath = "github.com/gatehouse-dev/gatehouse"

// installHint tells a developer how to get the tools the tests need.
const installHint = "run `make deps` (scripts/install-deps.sh) first; `make test` does it for you"

// RepoRoot returns the root of the Gatehouse module: the nearest directory
// at or above the working directory whose go.mod declares modulePath.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := findRepoRoot()
	if err != nil {
		t.Fatalf("RepoRoot: %v", err)
	}
	return root
}

func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if moduleOf(filepath.Join(dir, "go.mod")) == modulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for module %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// moduleOf returns the module path declared in the go.mod at path, or "".
func moduleOf(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(m), `"`)
		}
	}
	return ""
}

// RequireTool returns the path of an external program the test needs,
// looked up on PATH and then in the repository's .tools/bin. A missing tool
// fails the test with the install hint: CI has every tool, so a missing one
// is a broken setup, not a reason to skip.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if root, err := findRepoRoot(); err == nil {
		p := filepath.Join(root, ".tools", "bin", name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("required tool %q is not on PATH or in .tools/bin: %s", name, installHint)
	return ""
}

// built is the result of the one build of cmd/gatehouse per test process.
var built struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the path of a gatehouse binary built from this checkout's
// ./cmd/gatehouse (static, CGO_ENABLED=0, -trimpath). It builds once per
// test process; every later call returns the same path. The binary lives in
// a directory under os.TempDir named after the checkout, and is replaced
// atomically, so concurrent test processes of one checkout never see a
// half-written file and different checkouts never share one.
func Binary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() { built.path, built.err = buildGatehouse() })
	if built.err != nil {
		t.Fatalf("build gatehouse: %v", built.err)
	}
	return built.path
}

func buildGatehouse() (string, error) {
	root, err := findRepoRoot()
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is not on PATH: %w", err)
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), "gatehouse-e2e-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "gatehouse-*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // no-op after the rename succeeds
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", tmp.Name(), "./cmd/gatehouse")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/gatehouse: %w\n%s", err, out)
	}
	final := filepath.Join(dir, "gatehouse")
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", err
	}
	return final, nil
}
