package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/e2e/harness"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/store"
)

// benchEmail is the person the benchmark key is bound to.
const benchEmail = "bench@example.com"

// env is the running benchmark setup: a target sshd, a jump sshd for
// OpenSSH's own ProxyJump, and Gatehouse with the target configured and the
// client key already bound (as after an approval).
type env struct {
	dir                 string
	login               string
	target, jump, gate  *daemon
	bare                *daemon // the bare x/crypto relay (bare.go)
	fPort               int
	client              *cpuGroup // the ssh clients of the transfers
	tPort, jPort, gPort int
	adminPort           int
	cfgAES, cfgDefault  string          // ssh_config files for the client
	hostCA              gossh.PublicKey // Gatehouse's host CA, for the Go clients of the idle mode
	signer              gossh.Signer    // the client key, for the same
	srcN                atomic.Uint32   // source addresses handed out (see source)
}

func (e *env) stop() {
	e.bare.stop()
	e.gate.stop()
	e.jump.stop()
	e.target.stop()
	e.client.settle(0)
	e.client.remove()
}

// setup builds the environment in dir with the gatehouse binary bin.
func setup(dir, bin string, gateEnv []string) (e *env, err error) {
	e = &env{dir: dir}
	defer func() {
		if err != nil {
			e.stop()
		}
	}()
	if e.client, err = newCPUGroup("client"); err != nil {
		return nil, err
	}
	if e.login, err = benchLogin(); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil { // sshd reads authorized_keys as the login
		return nil, err
	}
	for _, k := range []string{"id_ed25519", "target_host", "jump_host", "bare_host"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name+".pub"))
		return strings.TrimSpace(string(b)), err
	}
	userPub, err := pub("id_ed25519")
	if err != nil {
		return nil, err
	}
	targetPub, _ := pub("target_host")
	jumpPub, _ := pub("jump_host")
	barePub, _ := pub("bare_host")
	for _, p := range []*int{&e.tPort, &e.jPort, &e.gPort, &e.fPort} {
		if *p, err = freePort(); err != nil {
			return nil, err
		}
	}
	if e.adminPort, err = freePort(); err != nil {
		return nil, err
	}

	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, err
	}
	secret := filepath.Join(dir, "oidc-secret")
	if err := os.WriteFile(secret, []byte("unused"), 0o600); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "gatehouse.yaml")
	cfg := fmt.Sprintf(`public_url: https://gate.bench
listen: {ssh: "127.0.0.1:%d", admin: "127.0.0.1:%d"}
data_dir: %s
sso: {issuer: "https://idp.invalid", client_id: bench, client_secret_file: %s}
mfa: {max_age: 12h}
log: {level: warn}
targets:
  - name: bench
    address: "127.0.0.1:%d"
    host_key: %q
    logins: [%s]
    allow: {emails: [%s]}
`, e.gPort, e.adminPort, data, secret, e.tPort, targetPub, e.login, benchEmail)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	userCA, err := exec.Command(bin, "ssh-config", "--user-ca", "--config", cfgPath).Output()
	if err != nil {
		return nil, fmt.Errorf("gatehouse ssh-config --user-ca: %w", err)
	}
	sshCfg, err := exec.Command(bin, "ssh-config", "--config", cfgPath).Output()
	if err != nil {
		return nil, fmt.Errorf("gatehouse ssh-config: %w", err)
	}
	if err := bindKey(filepath.Join(data, "state.db"), userPub); err != nil {
		return nil, fmt.Errorf("bind key: %w", err)
	}

	// known_hosts: the two sshds by key, Gatehouse by its host CA.
	kh := fmt.Sprintf("[127.0.0.1]:%d %s\n[127.0.0.1]:%d %s\n[127.0.0.1]:%d %s\n", e.tPort, targetPub, e.jPort, jumpPub, e.fPort, barePub)
	for _, l := range strings.Split(string(sshCfg), "\n") {
		if strings.HasPrefix(l, "@cert-authority ") {
			kh += l + "\n"
			if f := strings.Fields(l); len(f) >= 4 {
				e.hostCA, _, _, _, _ = gossh.ParseAuthorizedKey([]byte(strings.Join(f[2:], " ")))
			}
		}
	}
	if e.hostCA == nil {
		return nil, errors.New("gatehouse ssh-config printed no @cert-authority line")
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "id_ed25519"))
	if err != nil {
		return nil, err
	}
	if e.signer, err = gossh.ParsePrivateKey(keyPEM); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(kh), 0o644); err != nil {
		return nil, err
	}
	base := []string{"Host *",
		"  UserKnownHostsFile " + filepath.Join(dir, "known_hosts"),
		"  GlobalKnownHostsFile /dev/null", "  StrictHostKeyChecking yes",
		"  IdentitiesOnly yes", "  IdentityFile " + filepath.Join(dir, "id_ed25519"), "  IdentityAgent none",
		"  BatchMode yes", "  ControlMaster no", "  ControlPath none", "  Compression no", "  LogLevel ERROR"}
	e.cfgDefault = filepath.Join(dir, "ssh_config_default")
	e.cfgAES = filepath.Join(dir, "ssh_config_aes")
	if err := os.WriteFile(e.cfgDefault, []byte(strings.Join(base, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	aes := append(base, "  Ciphers aes128-gcm@openssh.com")
	if err := os.WriteFile(e.cfgAES, []byte(strings.Join(aes, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}

	if err := os.MkdirAll("/run/sshd", 0o755); err != nil && os.Geteuid() == 0 {
		return nil, err
	}
	if e.target, err = e.sshd("target", e.tPort, userPub, strings.TrimSpace(string(userCA)), false); err != nil {
		return nil, err
	}
	if e.jump, err = e.sshd("jump", e.jPort, userPub, "", true); err != nil {
		return nil, err
	}
	if e.gate, err = startDaemonEnv(dir, "gatehouse", gateEnv, bin, "serve", "--config", cfgPath); err != nil {
		return nil, err
	}
	if err := waitSSH(fmt.Sprintf("127.0.0.1:%d", e.gPort), e.gate); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if e.bare, err = startDaemon(dir, bareRole, self, "bare", "--listen", fmt.Sprintf("127.0.0.1:%d", e.fPort),
		"--host-key", filepath.Join(dir, "bare_host"), "--key", filepath.Join(dir, "id_ed25519"),
		"--target", fmt.Sprintf("127.0.0.1:%d", e.tPort), "--target-key", filepath.Join(dir, "target_host.pub"),
		"--login", e.login); err != nil {
		return nil, err
	}
	if err := waitSSH(fmt.Sprintf("127.0.0.1:%d", e.fPort), e.bare); err != nil {
		return nil, err
	}
	return e, nil
}

// sshd writes a config (the e2e harness's) and starts Debian's sshd.
func (e *env) sshd(name string, port int, authorized, userCA string, forward bool) (*daemon, error) {
	caFile := filepath.Join(e.dir, name+"_user_ca")
	if userCA == "" {
		caFile = "none"
	} else if err := os.WriteFile(caFile, []byte(userCA+"\n"), 0o644); err != nil {
		return nil, err
	}
	ak := filepath.Join(e.dir, name+"_authorized_keys")
	if err := os.WriteFile(ak, []byte(authorized+"\n"), 0o644); err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(e.dir, name+"_sshd_config")
	cfg := harness.SSHDConfigText(harness.SSHDConfigParams{
		Port: port, HostKeyFile: filepath.Join(e.dir, name+"_host"), PidFile: filepath.Join(e.dir, name+".pid"),
		TrustedUserCAKeysFile: caFile, AuthorizedKeysFile: ak, User: e.login, AllowTCPForwarding: forward,
	})
	cfg = strings.Replace(cfg, "LogLevel VERBOSE", "LogLevel ERROR", 1)
	// The concurrent and idle modes open hundreds of connections at once.
	cfg = strings.Replace(cfg, "MaxStartups 100:30:200", "MaxStartups 2000:30:4000", 1)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	d, err := startDaemon(e.dir, name+"-sshd", "/usr/sbin/sshd", "-D", "-e", "-f", cfgFile)
	if err != nil {
		return nil, err
	}
	if err := waitSSH(fmt.Sprintf("127.0.0.1:%d", port), d); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// benchLogin returns the login on the sshds: as root, the e2e harness's
// test user (created if missing and unlocked, as UsePAM is off); otherwise
// the current user.
func benchLogin() (string, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return "", err
		}
		return u.Username, nil
	}
	login := harness.DefaultSSHUser
	if _, err := user.Lookup(login); err != nil {
		if out, err := exec.Command("useradd", "-m", "-s", "/bin/bash", login).CombinedOutput(); err != nil {
			return "", fmt.Errorf("useradd %s: %v: %s", login, err, out)
		}
	}
	if out, err := exec.Command("usermod", "-p", "*", login).CombinedOutput(); err != nil {
		return "", fmt.Errorf("usermod %s: %v: %s", login, err, out)
	}
	return login, nil
}

// bindKey binds the client key to benchEmail in Gatehouse's store before
// Gatehouse starts, exactly as an approval in the browser would: the
// benchmark measures connections whose approval is already granted.
func bindKey(dbPath, authorizedKey string) error {
	k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		return err
	}
	st, err := store.OpenBolt(dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	kb, err := identity.NewKeyBindings(identity.Deps{Store: st, Audit: discardAudit{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	who := authz.Subject{Email: benchEmail, MFAAt: time.Now()}
	if err := kb.Bind(ctx, gossh.FingerprintSHA256(k), who, 11*time.Hour); err != nil {
		return err
	}
	if _, err := kb.Lookup(ctx, gossh.FingerprintSHA256(k)); err != nil {
		return errors.New("binding not found after Bind")
	}
	return nil
}

// discardAudit drops audit events of the setup step.
type discardAudit struct{}

func (discardAudit) Log(context.Context, audit.Event) error { return nil }
