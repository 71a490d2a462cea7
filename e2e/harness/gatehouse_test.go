package harness

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	if p <= 0 || p > 65535 {
		t.Fatalf("FreePort() = %d, want 1..65535", p)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatalf("port %d from FreePort is not free: %v", p, err)
	}
	l.Close()
}

func TestRepoRoot(t *testing.T) {
	root := RepoRoot(t)
	if got := moduleOf(filepath.Join(root, "go.mod")); got != modulePath {
		t.Errorf("RepoRoot() = %s with module %q, want %q", root, got, modulePath)
	}
	if _, err := os.Stat(filepath.Join(root, "e2e", "harness", "gatehouse.go")); err != nil {
		t.Errorf("RepoRoot() = %s does not hold e2e/harness: %v", root, err)
	}
}

func TestCommandArgs(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"lock", "a@x.test"}, []string{"lock", "--config", "C", "a@x.test"}},
		{[]string{"audit", "verify"}, []string{"audit", "verify", "--config", "C"}},
		{[]string{"recordings", "list", "--json"}, []string{"recordings", "list", "--config", "C", "--json"}},
		{[]string{"recordings", "export", "-o", "f", "ID"}, []string{"recordings", "export", "--config", "C", "-o", "f", "ID"}},
		{[]string{"ssh-config"}, []string{"ssh-config", "--config", "C"}},
		{[]string{"recordings"}, []string{"recordings", "--config", "C"}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, commandArgs("C", tc.args)); diff != "" {
			t.Errorf("commandArgs(%q) mismatch (-want +got):\n%s", tc.args, diff)
		}
	}
}

func TestPrepareConfig(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// fixed are the listen fields expected verbatim; "*" means a free
		// loopback port was assigned.
		https, ssh, http, admin string
	}{
		{
			name:  "port zero gets a free port, admin added",
			in:    "public_url: https://gate.test\nlisten:\n  https: 127.0.0.1:0\ntls: {mode: self_signed}\n",
			https: "*", admin: "*",
		},
		{
			name:  "fixed addresses kept, absent listeners stay off",
			in:    "public_url: https://gate.test\nlisten: {https: \"127.0.0.1:8443\", admin: \"127.0.0.1:9999\"}\ndata_dir: /nope\n",
			https: "127.0.0.1:8443", admin: "127.0.0.1:9999",
		},
		{
			name:  "no listen mapping at all",
			in:    "public_url: https://gate.test\n",
			admin: "*",
		},
		{
			name:  "bare :0 means loopback",
			in:    "listen: {https: \":0\", ssh: \":0\", http: \":0\", admin: \":0\"}\n",
			https: "*", ssh: "*", http: "*", admin: "*",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := &Gatehouse{DataDir: "/tmp/x/data"}
			out, err := g.prepareConfig(t, []byte(tc.in))
			if err != nil {
				t.Fatalf("prepareConfig: %v", err)
			}
			var got struct {
				DataDir string            `yaml:"data_dir"`
				Listen  map[string]string `yaml:"listen"`
			}
			if err := yaml.Unmarshal(out, &got); err != nil {
				t.Fatalf("output is not YAML: %v\n%s", err, out)
			}
			if got.DataDir != "/tmp/x/data" {
				t.Errorf("data_dir = %q, want /tmp/x/data", got.DataDir)
			}
			for _, f := range []struct{ key, want, field string }{
				{"https", tc.https, g.HTTPSAddr}, {"ssh", tc.ssh, g.SSHAddr},
				{"http", tc.http, g.HTTPAddr}, {"admin", tc.admin, g.AdminAddr},
			} {
				if f.field != got.Listen[f.key] {
					t.Errorf("field for listen.%s = %q, file has %q", f.key, f.field, got.Listen[f.key])
				}
				switch f.want {
				case "*":
					host, port, err := net.SplitHostPort(f.field)
					if err != nil || host != "127.0.0.1" || port == "0" {
						t.Errorf("listen.%s = %q, want 127.0.0.1 with a free port", f.key, f.field)
					}
				default:
					if f.field != f.want {
						t.Errorf("listen.%s = %q, want %q", f.key, f.field, f.want)
					}
				}
			}
		})
	}
}

func TestPrepareConfigRejectsNonMapping(t *testing.T) {
	g := &Gatehouse{DataDir: "/d"}
	for _, in := range []string{"- a\n- b\n", "just a string\n", ""} {
		if _, err := g.prepareConfig(t, []byte(in)); err == nil {
			t.Errorf("prepareConfig(%q) = nil error, want an error", in)
		}
	}
}

func TestLineLog(t *testing.T) {
	rec := &recordingTB{TB: t}
	l := newLineLog(rec, "p")
	for _, s := range []string{"one\ntw", "o\n", "three"} {
		l.Write([]byte(s))
	}
	if diff := cmp.Diff([]string{"p: one", "p: two"}, rec.logs); diff != "" {
		t.Errorf("logged lines before close (-want +got):\n%s", diff)
	}
	l.close()
	l.Write([]byte("\nafter\n"))
	if diff := cmp.Diff([]string{"p: one", "p: two", "p: three"}, rec.logs); diff != "" {
		t.Errorf("logged lines after close (-want +got):\n%s", diff)
	}
	if got, want := l.String(), "one\ntwo\nthree\nafter\n"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := l.tail(2), "three\nafter"; got != want {
		t.Errorf("tail(2) = %q, want %q", got, want)
	}
}

// recordingTB records Logf calls instead of logging them.
type recordingTB struct {
	testing.TB
	logs   []string
	fatals []string
}

func (r *recordingTB) Logf(format string, args ...any) {
	r.logs = append(r.logs, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

// Fatalf records the message; the caller goes on, which is enough to
// check what a helper reports.
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
}

func TestRequireTool(t *testing.T) {
	if p := RequireTool(t, "sh"); !filepath.IsAbs(p) {
		t.Errorf("RequireTool(sh) = %q, want an absolute path", p)
	}
	rec := &recordingTB{TB: t}
	if p := RequireTool(rec, "gatehouse-no-such-tool"); p != "" {
		t.Errorf("RequireTool(missing) = %q, want \"\"", p)
	}
	if len(rec.fatals) != 1 || !strings.Contains(rec.fatals[0], "make deps") {
		t.Errorf("RequireTool(missing) failed with %q, want one message with the install hint", rec.fatals)
	}
}
