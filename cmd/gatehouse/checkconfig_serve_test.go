package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/authz"
)

// doorFixture is a config for both doors whose every file exists and is
// good, in a temp dir of its own.
type doorFixture struct {
	dir, cert, key, ca, secret, hook, data, hostKey, admin string
}

// newDoorFixture writes the files. listen.admin is an address this test
// holds: should a bad config ever get past loading, serve stops at the
// admin listener with a different message (and the test fails) instead of
// serving forever.
func newDoorFixture(t *testing.T) doorFixture {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	f := doorFixture{dir: dir, data: filepath.Join(dir, "data")}
	f.cert, f.key = writeTestCert(t, dir, "tls", now.Add(-time.Hour), now.Add(time.Hour))
	f.ca, _ = writeTestCert(t, dir, "ca", now.Add(-time.Hour), now.Add(time.Hour))
	f.secret = writeTestFile(t, dir, "oidc-secret", "s3cret\n")
	f.hook = writeTestFile(t, dir, "hook-secret", "hmac\n")
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	f.hostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f.admin = ln.Addr().String()
	return f
}

// yaml is the fixture's config. The line numbers matter to the tests.
func (f doorFixture) yaml() string {
	return `public_url: https://gate.test
listen:
  https: "127.0.0.1:0"
  ssh: "127.0.0.1:0"
  admin: "` + f.admin + `"
tls: {mode: files, cert_file: ` + f.cert + `, key_file: ` + f.key + `}
data_dir: ` + f.data + `
sso: {issuer: "https://127.0.0.1:1", client_id: gh, client_secret_file: ` + f.secret + `, ca_roots: [` + f.ca + `]}
routes:
  - {name: app, host: app.test, upstream: "http://127.0.0.1:9", allow: {groups: [eng]}}
targets:
  - {name: prod, address: "127.0.0.1:22", host_key: "` + f.hostKey + `", logins: [ubuntu], allow: {groups: [sre]}}
audit:
  webhook: {url: "https://127.0.0.1:1/hook", secret_file: ` + f.hook + `}
log: {format: text, level: error}
`
}

func writeTestFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeTestCert writes a self-signed Ed25519 certificate for gate.test,
// valid from nb to na, and its key.
func writeTestCert(t *testing.T, dir, name string, nb, na time.Time) (certFile, keyFile string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), DNSNames: []string{"gate.test"}, NotBefore: nb, NotAfter: na}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeTestFile(t, dir, name+".crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeTestFile(t, dir, name+".key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})))
	return certFile, keyFile
}

// problemLines returns the "FILE:LINE: path: msg" lines of out.
func problemLines(out, file string) []string {
	var ps []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, file+":") && !strings.HasSuffix(l, "problem(s)") {
			ps = append(ps, l)
		}
	}
	return ps
}

// TestCheckConfigRefusesWhatServeRefuses runs every refusal serve can
// produce after loading a config, for a property of the config file,
// through both check-config and serve: both must fail with the same
// FILE:LINE: path: message lines.
func TestCheckConfigRefusesWhatServeRefuses(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name     string
		edit     func(t *testing.T, f doorFixture) (old, new string)
		wantLine int
		wantPath string
		wantMsg  string
	}{
		{"bad host key", func(t *testing.T, f doorFixture) (string, string) {
			return f.hostKey, "ssh-ed25519 not-a-key"
		}, 12, "targets[0].host_key", "not an SSH public key"},
		{"two host keys", func(t *testing.T, f doorFixture) (string, string) {
			return f.hostKey, f.hostKey + `\n` + f.hostKey
		}, 12, "targets[0].host_key", "more than one key"},
		{"host ca not a key", func(t *testing.T, f doorFixture) (string, string) {
			return "host_key: ", "host_ca: ssh-rsa AAAA "
		}, 12, "targets[0].host_ca", "not an SSH public key"},
		{"unreadable cert_file", func(t *testing.T, f doorFixture) (string, string) {
			return f.cert, filepath.Join(f.dir, "missing.crt")
		}, 6, "tls.cert_file", "no such file or directory"},
		{"unreadable key_file", func(t *testing.T, f doorFixture) (string, string) {
			return f.key, filepath.Join(f.dir, "missing.key")
		}, 6, "tls.key_file", "no such file or directory"},
		{"key of another certificate", func(t *testing.T, f doorFixture) (string, string) {
			_, other := writeTestCert(t, f.dir, "other", now.Add(-time.Hour), now.Add(time.Hour))
			return f.key, other
		}, 6, "tls.key_file", "private key does not match public key"},
		{"cert_file not a certificate", func(t *testing.T, f doorFixture) (string, string) {
			return f.cert, f.secret
		}, 6, "tls.cert_file", "no PEM certificate"},
		{"expired certificate", func(t *testing.T, f doorFixture) (string, string) {
			c, k := writeTestCert(t, f.dir, "old", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
			return f.cert + ", key_file: " + f.key, c + ", key_file: " + k
		}, 6, "tls.cert_file", "expired at"},
		{"unreadable sso ca file", func(t *testing.T, f doorFixture) (string, string) {
			return f.ca, filepath.Join(f.dir, "missing-ca.pem")
		}, 8, "sso.ca_roots[0]", "no such file or directory"},
		{"sso ca file without certificates", func(t *testing.T, f doorFixture) (string, string) {
			return "ca_roots: [" + f.ca, "ca_roots: [" + f.secret
		}, 8, "sso.ca_roots[0]", "no PEM certificate in"},
		{"unreadable acme ca file", func(t *testing.T, f doorFixture) (string, string) {
			return "tls: {mode: files, cert_file: " + f.cert + ", key_file: " + f.key + "}",
				"tls: {mode: acme, acme: {ca_roots: [" + filepath.Join(f.dir, "missing-acme.pem") + "]}}"
		}, 6, "tls.acme.ca_roots[0]", "no such file or directory"},
		{"unreadable client secret", func(t *testing.T, f doorFixture) (string, string) {
			return f.secret, filepath.Join(f.dir, "missing-secret")
		}, 8, "sso.client_secret_file", "no such file or directory"},
		{"empty client secret", func(t *testing.T, f doorFixture) (string, string) {
			return f.secret, writeTestFile(t, f.dir, "empty", "\n")
		}, 8, "sso.client_secret_file", "empty"},
		{"sso without routes lacks its secret", func(t *testing.T, f doorFixture) (string, string) {
			// No routes and no targets, but the issuer is set: the portal
			// signs people in with it, so serve reads the secret.
			y := f.yaml()
			old := y[strings.Index(y, f.secret):strings.Index(y, "audit:")]
			return old, filepath.Join(f.dir, "missing-secret") + ", ca_roots: [" + f.ca + "]}\n"
		}, 8, "sso.client_secret_file", "no such file or directory"},
		{"unreadable webhook secret", func(t *testing.T, f doorFixture) (string, string) {
			return f.hook, filepath.Join(f.dir, "missing-hook")
		}, 14, "audit.webhook.secret_file", "no such file or directory"},
		{"empty webhook secret", func(t *testing.T, f doorFixture) (string, string) {
			return f.hook, writeTestFile(t, f.dir, "empty", "  \n")
		}, 14, "audit.webhook.secret_file", "empty"},
		{"upstream without host", func(t *testing.T, f doorFixture) (string, string) {
			return "http://127.0.0.1:9", "http://:9"
		}, 10, "routes[0].upstream", "no credentials or query"},
		{"upstream with credentials", func(t *testing.T, f doorFixture) (string, string) {
			return "http://127.0.0.1:9", "http://u:p@127.0.0.1:9"
		}, 10, "routes[0].upstream", "no credentials or query"},
		{"upstream scheme", func(t *testing.T, f doorFixture) (string, string) {
			return "http://127.0.0.1:9", "ftp://127.0.0.1:9"
		}, 10, "routes[0].upstream", "scheme must be http or https"},
		{"public_url scheme in capitals", func(t *testing.T, f doorFixture) (string, string) {
			return "public_url: https://", "public_url: HTTPS://"
		}, 1, "public_url", "must be an https URL"},
		{"public_url without host", func(t *testing.T, f doorFixture) (string, string) {
			return "public_url: https://gate.test", "public_url: https://:443"
		}, 1, "public_url", "must be an https URL"},
		{"data_dir is a file", func(t *testing.T, f doorFixture) (string, string) {
			return "data_dir: " + f.data, "data_dir: " + f.secret
		}, 7, "data_dir", "not a directory"},
		{"data_dir open to others", func(t *testing.T, f doorFixture) (string, string) {
			if err := os.Mkdir(f.data, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f.data, 0o750); err != nil {
				t.Fatal(err)
			}
			return "", ""
		}, 7, "data_dir", "has mode 0750"},
		{"data_dir too long for the control socket", func(t *testing.T, f doorFixture) (string, string) {
			return "data_dir: " + f.data, "data_dir: " + filepath.Join(f.data, strings.Repeat("d", 100))
		}, 7, "data_dir", "control socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newDoorFixture(t)
			doc := f.yaml()
			old, new := tt.edit(t, f)
			if !strings.Contains(doc, old) {
				t.Fatalf("edit %q not in the config", old)
			}
			doc = strings.Replace(doc, old, new, 1)
			path := writeTestFile(t, f.dir, "gatehouse.yaml", doc)
			want := path + ":" + strconv.Itoa(tt.wantLine) + ": " + tt.wantPath + ": "

			var checkOut, checkErr bytes.Buffer
			if code := cmdCheckConfig([]string{"--config", path}, &checkOut, &checkErr); code != 1 {
				t.Errorf("check-config = %d, want 1\nstdout: %s\nstderr: %s", code, &checkOut, &checkErr)
			}
			var serveOut, serveErr bytes.Buffer
			if code := cmdServe([]string{"--config", path}, &serveOut, &serveErr); code != 1 {
				t.Errorf("serve = %d, want 1\nstderr: %s", code, &serveErr)
			}
			checkLines, serveLines := problemLines(checkErr.String(), path), problemLines(serveErr.String(), path)
			if strings.Join(checkLines, "\n") != strings.Join(serveLines, "\n") {
				t.Errorf("check-config and serve disagree:\ncheck-config:\n%s\nserve:\n%s", &checkErr, &serveErr)
			}
			found := false
			for _, l := range checkLines {
				found = found || strings.HasPrefix(l, want) && strings.Contains(l, tt.wantMsg)
			}
			if !found {
				t.Errorf("check-config printed\n%s\nwant a line %q...%q", &checkErr, want, tt.wantMsg)
			}
			if !strings.Contains(serveErr.String(), "refusing to start with an invalid config") {
				t.Errorf("serve stderr lacks the refusal:\n%s", &serveErr)
			}
		})
	}
}

// TestDoorFixtureServes is the control for the table above: the unedited
// fixture passes check-config, and serve gets past loading it, to the
// listener this test holds.
func TestDoorFixtureServes(t *testing.T) {
	f := newDoorFixture(t)
	path := writeTestFile(t, f.dir, "gatehouse.yaml", f.yaml())
	var stdout, stderr bytes.Buffer
	if code := cmdCheckConfig([]string{"--config", path}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "config OK") {
		t.Fatalf("check-config = %d\nstdout: %s\nstderr: %s", code, &stdout, &stderr)
	}
	stderr.Reset()
	if code := cmdServe([]string{"--config", path}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "listen.admin") ||
		strings.Contains(stderr.String(), "invalid config") {
		t.Fatalf("serve = %d, want 1 at the held admin address\nstderr: %s", code, &stderr)
	}
}

// TestMinimalConfigMFADefault loads the minimal config (no mfa block)
// the way serve does and checks that the 12h default reaches both doors'
// decisions without any consumer re-defaulting: authz gets no fallback.
func TestMinimalConfigMFADefault(t *testing.T) {
	f := newDoorFixture(t)
	doc := `public_url: https://gate.test
listen: {https: "127.0.0.1:0", ssh: "127.0.0.1:0"}
tls: {mode: self_signed}
data_dir: ` + f.data + `
sso: {issuer: "https://idp.test", client_id: gh, client_secret_file: ` + f.secret + `}
routes: [{name: app, host: app.test, upstream: "http://127.0.0.1:9", allow: {groups: [eng]}}]
targets: [{name: prod, address: "127.0.0.1:22", host_key: "` + f.hostKey + `", logins: [ubuntu], allow: {groups: [eng]}}]
`
	var stderr bytes.Buffer
	cfg, ok := loadConfig(writeTestFile(t, f.dir, "min.yaml", doc), &stderr)
	if !ok {
		t.Fatalf("loadConfig: %s", &stderr)
	}
	if got := cfg.MFA.MaxAge.D(); got != 12*time.Hour {
		t.Errorf("mfa.max_age = %v, want 12h", got)
	}
	if r, tg := cfg.Routes[0].MFAMaxAge.D(), cfg.Targets[0].MFAMaxAge.D(); r != 12*time.Hour || tg != 12*time.Hour {
		t.Errorf("routes[0].mfa_max_age = %v, targets[0].mfa_max_age = %v, want 12h each", r, tg)
	}
	now := time.Now()
	for _, tt := range []struct {
		age  time.Duration
		want bool
	}{{11 * time.Hour, true}, {13 * time.Hour, false}} {
		who := authz.Subject{Email: "ann@example.com", Groups: []string{"eng"}, MFAAt: now.Add(-tt.age)}
		if d := authz.DecideRoute(who, &cfg.Routes[0], 0, "/", now); d.Allow != tt.want {
			t.Errorf("route with a %v old assertion: %+v, want allow=%v", tt.age, d, tt.want)
		}
		if d := authz.DecideTarget(who, &cfg.Targets[0], "ubuntu", 0, now); d.Allow != tt.want {
			t.Errorf("target with a %v old assertion: %+v, want allow=%v", tt.age, d, tt.want)
		}
	}
}
