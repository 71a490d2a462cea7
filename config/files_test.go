package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("edit %q not found in %q", old, s)
	}
	return strings.Replace(s, old, new, 1)
}

// writeFile writes data to name in dir with mode 0600 and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeCert writes a self-signed certificate and its key, valid from
// notBefore to notAfter, and returns their paths.
func writeCert(t *testing.T, dir, name string, notBefore, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gate.example.com"},
		DNSNames: []string{"gate.example.com"}, NotBefore: notBefore, NotAfter: notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, dir, name+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyFile = writeFile(t, dir, name+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile
}

// fileFixture is a config whose every file reference exists and is good.
type fileFixture struct {
	dir, yaml                         string
	cert, key, ca, secret, hook, data string
}

func newFileFixture(t *testing.T) fileFixture {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	f := fileFixture{dir: dir}
	f.cert, f.key = writeCert(t, dir, "tls", now.Add(-time.Hour), now.Add(24*time.Hour))
	f.ca, _ = writeCert(t, dir, "ca", now.Add(-time.Hour), now.Add(24*time.Hour))
	f.secret = writeFile(t, dir, "oidc-secret", []byte("s3cret\n"))
	f.hook = writeFile(t, dir, "hook-secret", []byte("hmac-key\n"))
	f.data = filepath.Join(dir, "data")
	f.yaml = `public_url: https://gate.example.com
listen: {https: ":443"}
tls: {mode: files, cert_file: ` + f.cert + `, key_file: ` + f.key + `}
data_dir: ` + f.data + `
sso: {issuer: https://idp.example.com, client_id: gatehouse, client_secret_file: ` + f.secret + `, ca_roots: [` + f.ca + `]}
audit:
  webhook: {url: https://siem.example/hook, secret_file: ` + f.hook + `}
`
	return f
}

func TestLoadFileChecksFiles(t *testing.T) {
	f := newFileFixture(t)
	path := writeFile(t, f.dir, "good.yaml", []byte(f.yaml))
	if _, err := LoadFile(path); err != nil {
		t.Fatalf("LoadFile(good) = %v", err)
	}
	if _, err := Load([]byte(replaceOnce(t, f.yaml, f.secret, "/nonexistent/secret"))); err != nil {
		t.Errorf("Load read a file: %v (it must not: only LoadFile checks files)", err)
	}

	now := time.Now()
	expCert, expKey := writeCert(t, f.dir, "expired", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	futCert, futKey := writeCert(t, f.dir, "future", now.Add(24*time.Hour), now.Add(48*time.Hour))
	_, otherKey := writeCert(t, f.dir, "other", now.Add(-time.Hour), now.Add(time.Hour))
	empty := writeFile(t, f.dir, "empty", []byte(" \n"))
	big := writeFile(t, f.dir, "big", []byte(strings.Repeat("x", maxSecretSize+1)))
	notPEM := writeFile(t, f.dir, "not.pem", []byte("hello\n"))
	loose := filepath.Join(f.dir, "loose")
	if err := os.Mkdir(loose, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o750); err != nil {
		t.Fatal(err)
	}
	long := "/tmp/" + strings.Repeat("d", 100)

	tests := []struct {
		name, old, new string
		wantPath       string
		wantLine       int
		wantInMsg      string
	}{
		{"missing cert", f.cert, "/nonexistent/tls.crt", "tls.cert_file", 3, "open /nonexistent/tls.crt: no such file"},
		{"missing key", f.key, "/nonexistent/tls.key", "tls.key_file", 3, "open /nonexistent/tls.key: no such file"},
		{"key of another cert", f.key, otherKey, "tls.key_file", 3, "private key does not match public key"},
		{"cert not PEM", f.cert, notPEM, "tls.cert_file", 3, "no PEM certificate"},
		{"cert is a directory", f.cert, f.dir, "tls.cert_file", 3, "not a regular file"},
		{"expired cert", f.cert + ", key_file: " + f.key, expCert + ", key_file: " + expKey, "tls.cert_file", 3, "expired at"},
		{"future cert", f.cert + ", key_file: " + f.key, futCert + ", key_file: " + futKey, "tls.cert_file", 3, "not valid before"},
		{"missing client secret", f.secret, "/nonexistent/secret", "sso.client_secret_file", 5, "no such file"},
		{"empty client secret", f.secret, empty, "sso.client_secret_file", 5, "empty"},
		{"huge client secret", f.secret, big, "sso.client_secret_file", 5, "larger than 4096 bytes"},
		{"missing sso ca", "ca_roots: [" + f.ca, "ca_roots: [/nonexistent/ca.pem", "sso.ca_roots[0]", 5, "no such file"},
		{"sso ca not PEM", "ca_roots: [" + f.ca, "ca_roots: [" + notPEM, "sso.ca_roots[0]", 5, "no PEM certificate in"},
		{"missing acme ca", "tls: {mode: files, cert_file: " + f.cert + ", key_file: " + f.key + "}", "tls: {mode: acme, acme: {ca_roots: [/nonexistent/acme.pem]}}", "tls.acme.ca_roots[0]", 3, "no such file"},
		{"missing hook secret", f.hook, "/nonexistent/hook", "audit.webhook.secret_file", 7, "no such file"},
		{"empty hook secret", f.hook, empty, "audit.webhook.secret_file", 7, "empty"},
		{"missing redis password", "data_dir:", "redis: {addr: \"127.0.0.1:6379\", password_file: /nonexistent/pw}\ndata_dir:", "redis.password_file", 4, "no such file"},
		{"missing redis ca", "data_dir:", "redis: {addr: \"127.0.0.1:6379\", tls: {ca_file: /nonexistent/ca.pem}}\ndata_dir:", "redis.tls.ca_file", 4, "no such file"},
		{"redis ca not PEM", "data_dir:", "redis: {addr: \"127.0.0.1:6379\", tls: {ca_file: " + notPEM + "}}\ndata_dir:", "redis.tls.ca_file", 4, "no PEM certificate in"},
		{"data dir is a file", "data_dir: " + f.data, "data_dir: " + f.secret, "data_dir", 4, "not a directory"},
		{"data dir loose", "data_dir: " + f.data, "data_dir: " + loose, "data_dir", 4, "has mode 0750"},
		{"data dir under a file", "data_dir: " + f.data, "data_dir: " + f.secret + "/data", "data_dir", 4, "not a directory"},
		{"data dir too long", "data_dir: " + f.data, "data_dir: " + long, "data_dir", 4, "control socket"},
		{"recording dir loose", "audit:", "recording: {dir: " + loose + "}\naudit:", "recording.dir", 6, "has mode 0750"},
		{"recording dir is a file", "audit:", "recording: {dir: " + f.secret + "}\naudit:", "recording.dir", 6, "not a directory"},
		{"bad host key", "audit:", "targets: [{name: t, address: \"h:22\", host_key: \"ssh-ed25519 not-a-key\", logins: [u], record: off}]\naudit:", "targets[0].host_key", 6, "not an SSH public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := replaceOnce(t, f.yaml, `listen: {https: ":443"}`, `listen: {https: ":443", ssh: ":2222"}`)
			doc = replaceOnce(t, doc, tt.old, tt.new)
			_, err := LoadFile(writeFile(t, t.TempDir(), "g.yaml", []byte(doc)))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("LoadFile = %v, want Problems", err)
			}
			for _, p := range ps {
				if p.Path == tt.wantPath && strings.Contains(p.Msg, tt.wantInMsg) {
					if p.Line != tt.wantLine {
						t.Errorf("problem %q at line %d, want line %d", p, p.Line, tt.wantLine)
					}
					return
				}
			}
			t.Errorf("LoadFile problems = %q, want one at %s containing %q", ps.Error(), tt.wantPath, tt.wantInMsg)
		})
	}
}

// TestLoadFileSkipsRefusedPaths checks that a path Validate refuses is not
// read as well: one problem per mistake.
func TestLoadFileSkipsRefusedPaths(t *testing.T) {
	f := newFileFixture(t)
	doc := replaceOnce(t, f.yaml, f.secret, "relative/secret")
	_, err := LoadFile(writeFile(t, f.dir, "g.yaml", []byte(doc)))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "sso.client_secret_file" || !strings.Contains(ps[0].Msg, "absolute") {
		t.Errorf("LoadFile = %v, want exactly the absolute-path problem", err)
	}
}
