package sshgw

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/config"
)

func TestKeysCreatedOnceWithTightModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	// Concurrent first use (serve and ssh-config) ends with one key.
	var wg sync.WaitGroup
	lines := make([]string, 8)
	for i := range lines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := UserCAPublicKey(dir)
			if err != nil {
				t.Error(err)
			}
			lines[i] = l
		}()
	}
	wg.Wait()
	for _, l := range lines[1:] {
		if l != lines[0] {
			t.Fatalf("concurrent creators got different keys: %q vs %q", l, lines[0])
		}
	}
	if !strings.HasPrefix(lines[0], "ssh-ed25519 ") || !strings.HasSuffix(lines[0], " gatehouse-user-ca") {
		t.Errorf("user CA line = %q", lines[0])
	}
	k, err := loadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := authorizedKey(k.userCA.PublicKey(), "gatehouse-user-ca"); got != lines[0] {
		t.Errorf("loadKeys user CA %q != %q", got, lines[0])
	}
	for _, name := range []string{hostKeyFile, hostCAFile, userCAFile} {
		fi, err := os.Stat(filepath.Join(dir, keyDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, keyDir)); fi.Mode().Perm() != 0o700 {
		t.Errorf("key dir mode %v, want 0700", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, keyDir)); len(ents) != 3 {
		t.Errorf("key dir holds %d files, want 3 (temporary files left?)", len(ents))
	}
	// A key readable by others is refused.
	p := filepath.Join(dir, keyDir, userCAFile)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := UserCAPublicKey(dir); err == nil || !strings.Contains(err.Error(), "too open") {
		t.Errorf("world-readable key: %v", err)
	}
}

func TestSSHConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{
		PublicURL: "https://gate.example.com",
		Listen:    config.Listen{SSH: ":2222"},
		DataDir:   dir,
		Targets: []config.Target{
			{Name: "prod-db", Address: "10.0.0.7:22"},
			{Name: "web", Address: "web.internal:2200"},
		},
	}
	out, err := SSHConfig(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	var ca string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "@cert-authority ") {
			ca = l
		}
	}
	f := strings.Fields(ca)
	if len(f) < 4 {
		t.Fatalf("no @cert-authority line in:\n%s", out)
	}
	wantPats := []string{"gate.example.com", "[gate.example.com]:2222", "prod-db", "10.0.0.7", "web", "web.internal", "[web.internal]:2200"}
	if diff := cmp.Diff(wantPats, strings.Split(f[1], ",")); diff != "" {
		t.Errorf("patterns (-want +got):\n%s", diff)
	}
	k, err := loadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f[2:4], " ") + "\n"; got != string(gossh.MarshalAuthorizedKey(k.hostCA.PublicKey())) {
		t.Errorf("CA key %q is not the host CA", got)
	}
	for _, want := range []string{"Host gatehouse\n    HostName gate.example.com\n    Port 2222\n", "Host prod-db web\n    ProxyJump gatehouse\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("ssh-config lacks %q:\n%s", want, out)
		}
	}
}

func TestHostCertificatePrincipals(t *testing.T) {
	e := newEnv(t, Limits{}, nil)
	// The gateway's own certificate names public_url's host and the
	// listen address; a ProxyJump certificate names the target. (e.dial
	// and e.jump verify the certificates the same way OpenSSH does.)
	tests := []struct {
		jump *target
		want []string
	}{
		{nil, []string{"gate.test", "127.0.0.1"}},
		{e.srv.policy().targets["prod"], []string{"prod", "127.0.0.1"}},
	}
	for _, tc := range tests {
		s, err := hostCertSigner(e.srv.keys.host, e.srv.keys.hostCA, e.srv.hostPrincipals(tc.jump), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cert := s.PublicKey().(*gossh.Certificate)
		if diff := cmp.Diff(tc.want, cert.ValidPrincipals); diff != "" {
			t.Errorf("principals (-want +got):\n%s", diff)
		}
		if cert.CertType != gossh.HostCert || cert.ValidBefore-cert.ValidAfter > uint64((hostCertLife+5*time.Minute)/time.Second) {
			t.Errorf("cert type %d, validity %ds", cert.CertType, cert.ValidBefore-cert.ValidAfter)
		}
	}
}
