package sshgw

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
)

func TestKeysCreatedOnceSealedWithTightModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	kr := secretstest.New(t)
	// Concurrent first use (serve and ssh-config) ends with one key.
	var wg sync.WaitGroup
	lines := make([]string, 8)
	for i := range lines {
		wg.Go(func() {
			l, err := UserCAPublicKey(t.Context(), fileVault(t, dir, kr))
			if err != nil {
				t.Error(err)
			}
			lines[i] = l
		})
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
	k, err := loadKeys(t.Context(), fileVault(t, dir, kr))
	if err != nil {
		t.Fatal(err)
	}
	if got := authorizedKey(k.userCA.PublicKey(), "gatehouse-user-ca"); got != lines[0] {
		t.Errorf("loadKeys user CA %q != %q", got, lines[0])
	}
	for _, name := range keyNames {
		p := filepath.Join(dir, keyDir, name+".sealed")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(p)
		if !secrets.IsSealed(b) || bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s is not sealed", p)
		}
	}
	noPlainKeys(t, dir, kr)
	if fi, _ := os.Stat(filepath.Join(dir, keyDir)); fi.Mode().Perm() != 0o700 {
		t.Errorf("key dir mode %v, want 0700", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, keyDir)); len(ents) != 3 {
		t.Errorf("key dir holds %d files, want 3 (temporary files left?)", len(ents))
	}
	// Another master key cannot open them, and no keyring is refused.
	if _, err := loadKeys(t.Context(), fileVault(t, dir, secretstest.New(t))); err == nil {
		t.Error("keys opened under another master key")
	}
	if _, err := FileVault(dir, nil); err == nil {
		t.Error("a key vault without a keyring")
	}
	// A sealed key moved to another name is refused (purpose binding).
	uca := filepath.Join(dir, keyDir, userCAFile+".sealed")
	hca, _ := os.ReadFile(filepath.Join(dir, keyDir, hostCAFile+".sealed"))
	orig, _ := os.ReadFile(uca)
	if err := os.WriteFile(uca, hca, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := UserCAPublicKey(t.Context(), fileVault(t, dir, kr)); err == nil {
		t.Error("host CA sealed file accepted as the user CA")
	}
	if err := os.WriteFile(uca, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	// A key readable by others is refused.
	if err := os.Chmod(uca, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := UserCAPublicKey(t.Context(), fileVault(t, dir, kr)); err == nil || !strings.Contains(err.Error(), "too open") {
		t.Errorf("world-readable key: %v", err)
	}
}

// noPlainKeys fails if any file under dir holds a private key in the
// clear: PEM, or the raw Ed25519 seed of one of the sealed keys.
func noPlainKeys(t *testing.T, dir string, kr *secrets.Keyring) {
	t.Helper()
	var seeds [][]byte
	for _, name := range keyNames {
		b, err := os.ReadFile(filepath.Join(dir, keyDir, name+".sealed"))
		if err != nil {
			t.Fatal(err)
		}
		pemBytes, err := kr.Open(purpose(name), b)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := gossh.ParseRawPrivateKey(pemBytes)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, raw.(*ed25519.PrivateKey).Seed())
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a PEM private key", p)
		}
		for _, s := range seeds {
			if bytes.Contains(b, s) {
				t.Errorf("%s holds a raw Ed25519 seed", p)
			}
		}
		return nil
	})
}

func TestPlaintextKeysMigratedAndResealed(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, keyDir), 0o700); err != nil {
		t.Fatal(err)
	}
	// Keys as an older release left them: plaintext OpenSSH PEM files.
	want := map[string]string{}
	for _, name := range keyNames {
		pemBytes, err := newKeyPEM()
		if err != nil {
			t.Fatal(err)
		}
		s, _ := gossh.ParsePrivateKey(pemBytes)
		want[name] = string(s.PublicKey().Marshal())
		if err := os.WriteFile(filepath.Join(dir, keyDir, name), pemBytes, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	oldRaw, newRaw := randKey(t), randKey(t)
	oldKR, err := secrets.New(oldRaw)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logged, err := secrets.NewVault(secrets.VaultConfig{Keyring: oldKR, Backend: secrets.Dir(dir), PlainDir: dir,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	k, err := loadKeys(t.Context(), logged)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{hostKeyFile: string(k.host.PublicKey().Marshal()),
		hostCAFile: string(k.hostCA.PublicKey().Marshal()), userCAFile: string(k.userCA.PublicKey().Marshal())}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("migration changed keys (-want +got):\n%s", diff)
	}
	for _, name := range keyNames {
		if _, err := os.Stat(filepath.Join(dir, keyDir, name)); !os.IsNotExist(err) {
			t.Errorf("plaintext %s still there: %v", name, err)
		}
	}
	if n := strings.Count(logs.String(), "Sealed a plaintext key"); n != 3 {
		t.Errorf("%d migrations logged, want 3:\n%s", n, logs.String())
	}
	noPlainKeys(t, dir, oldKR)

	// Rotation: a new master key first, the old one kept; rekey reseals.
	newKR, err := secrets.New(newRaw, oldRaw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadKeys(t.Context(), fileVault(t, dir, newKR)); err != nil {
		t.Fatalf("old sealed keys under the rotated ring: %v", err)
	}
	if n, err := fileVault(t, dir, newKR).Reseal(t.Context(), KeySpecs()...); err != nil || n != 3 {
		t.Fatalf("Reseal = %d, %v; want 3", n, err)
	}
	if n, err := fileVault(t, dir, newKR).Reseal(t.Context(), KeySpecs()...); err != nil || n != 0 {
		t.Errorf("second Reseal = %d, %v; want 0", n, err)
	}
	if _, err := loadKeys(t.Context(), fileVault(t, dir, oldKR)); err == nil {
		t.Error("old master key alone still opens the resealed keys")
	}
	newOnly, _ := secrets.New(newRaw)
	if _, err := loadKeys(t.Context(), fileVault(t, dir, newOnly)); err != nil {
		t.Errorf("after dropping the old master key: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, keyDir)); len(ents) != 3 {
		t.Errorf("key dir holds %d files, want 3", len(ents))
	}
}

// fileVault is the vault a single host uses: sealed files in dir.
func fileVault(t testing.TB, dir string, kr *secrets.Keyring) *secrets.Vault {
	t.Helper()
	v, err := FileVault(dir, kr)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func randKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, secrets.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSSHConfig(t *testing.T) {
	dir := t.TempDir()
	kr := secretstest.New(t)
	cfg := &config.Config{
		PublicURL: "https://gate.example.com",
		Listen:    config.Listen{SSH: ":2222"},
		DataDir:   dir,
		Targets: []config.Target{
			{Name: "prod-db", Address: "10.0.0.7:22"},
			{Name: "web", Address: "web.internal:2200"},
		},
	}
	out, err := SSHConfig(t.Context(), cfg, fileVault(t, dir, kr))
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
	k, err := loadKeys(t.Context(), fileVault(t, dir, kr))
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
