package harness

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// DefaultSSHUser is the login StartSSHD creates (when missing) and lets in
// when SSHDOptions.User is empty and the test runs as root.
const DefaultSSHUser = "gh-e2e"

// SSHDOptions configures StartSSHD.
type SSHDOptions struct {
	// TrustedUserCAKeys is one or more authorized_keys lines
	// ("ssh-ed25519 AAAA..."): the user CAs whose certificates sshd accepts
	// (TrustedUserCAKeys). A certificate must list the login as a principal.
	// Typically the output of `gatehouse ssh-config --user-ca --config F`.
	TrustedUserCAKeys string
	// AuthorizedKeys is optional authorized_keys content for the login, for
	// direct logins that bypass Gatehouse (benchmarks, ProxyJump baselines).
	// Empty means no plain key is accepted (AuthorizedKeysFile none).
	AuthorizedKeys string
	// User is the login the test uses. Empty means DefaultSSHUser when
	// running as root (created with useradd -m if missing, and unlocked with
	// usermod -p '*' because UsePAM is off), or the current user otherwise.
	User string
	// AllowTCPForwarding turns on AllowTcpForwarding (local forwards); off
	// by default.
	AllowTCPForwarding bool
	// ExtraConfig is appended to sshd_config verbatim (e.g. "Ciphers
	// aes128-gcm@openssh.com"). Note that sshd uses the first value it
	// reads for most keywords, so ExtraConfig cannot override the
	// harness's own lines.
	ExtraConfig string
}

// SSHD is an OpenSSH server (Debian's /usr/sbin/sshd) started by StartSSHD
// on 127.0.0.1 for one test.
type SSHD struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// Port is the listening port.
	Port int
	// User is the login that may log in.
	User string
	// HostKeyLine is the host's public key as an authorized_keys line
	// without comment ("ssh-ed25519 AAAA..."), for a target's host_key.
	HostKeyLine string
	// HostKey is the host's public key.
	HostKey ssh.PublicKey
	// KnownHostsFile is a known_hosts file that trusts HostKey for Addr
	// ("[127.0.0.1]:PORT ssh-ed25519 AAAA..."), for direct ssh -o
	// UserKnownHostsFile=... connections.
	KnownHostsFile string
	// ConfigFile is the sshd_config path.
	ConfigFile string
	// TrustedUserCAKeysFile is the TrustedUserCAKeys file; see
	// SetTrustedUserCAKeys.
	TrustedUserCAKeysFile string

	d *daemon
}

// StartSSHD writes an sshd_config and a fresh Ed25519 host key into a new
// directory, starts `/usr/sbin/sshd -D -e -f CONFIG` on 127.0.0.1 on a free
// port, waits until it sends its SSH banner, and stops it when the test
// ends. Its log (LogLevel VERBOSE) goes to t.Log. Password and
// keyboard-interactive authentication are off: only certificates from
// TrustedUserCAKeys and keys in AuthorizedKeys get in.
//
// Usage (the target first, because gatehouse's config names its address
// and host key; then trust the user CA gatehouse made):
//
//	target := harness.StartSSHD(t, harness.SSHDOptions{AllowTCPForwarding: true})
//	// config: targets: [{name: web, address: target.Addr,
//	//          host_key: target.HostKeyLine, logins: [target.User], ...}]
//	g := harness.StartGatehouseYAML(t, cfg)
//	target.SetTrustedUserCAKeys(t, g.MustRun(t, "ssh-config", "--user-ca"))
//
// With TrustedUserCAKeys empty, sshd trusts no CA until
// SetTrustedUserCAKeys.
func StartSSHD(t testing.TB, opts SSHDOptions) *SSHD {
	t.Helper()
	const sshdBin = "/usr/sbin/sshd" // sshd refuses to run unless started by absolute path
	if _, err := os.Stat(sshdBin); err != nil {
		t.Fatalf("StartSSHD: %s missing (Debian package openssh-server): %s", sshdBin, installHint)
	}
	login := sshdUser(t, opts.User)

	// sshd reads AuthorizedKeysFile as the login user, so the directory
	// must be world-readable; t.TempDir's parent is 0700.
	dir, err := os.MkdirTemp("", "gatehouse-sshd-")
	if err != nil {
		t.Fatalf("StartSSHD: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("StartSSHD: %v", err)
	}

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("StartSSHD: host key: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatalf("StartSSHD: host key: %v", err)
	}
	hostKeyFile := filepath.Join(dir, "ssh_host_ed25519_key")
	writeFile(t, hostKeyFile, pem.EncodeToMemory(block), 0o600)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("StartSSHD: host key: %v", err)
	}

	port := FreePort(t)
	s := &SSHD{
		Addr:        net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Port:        port,
		User:        login,
		HostKey:     signer.PublicKey(),
		HostKeyLine: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))),
		ConfigFile:  filepath.Join(dir, "sshd_config"),
	}
	s.KnownHostsFile = filepath.Join(dir, "known_hosts")
	writeFile(t, s.KnownHostsFile, []byte(fmt.Sprintf("[127.0.0.1]:%d %s\n", port, s.HostKeyLine)), 0o644)

	caFile := filepath.Join(dir, "trusted_user_ca_keys")
	s.TrustedUserCAKeysFile = caFile
	s.SetTrustedUserCAKeys(t, opts.TrustedUserCAKeys)
	authKeys := "none"
	if opts.AuthorizedKeys != "" {
		authKeys = filepath.Join(dir, "authorized_keys")
		writeFile(t, authKeys, []byte(strings.TrimSpace(opts.AuthorizedKeys)+"\n"), 0o644)
	}
	cfg := SSHDConfigText(SSHDConfigParams{
		Port: port, HostKeyFile: hostKeyFile, PidFile: filepath.Join(dir, "sshd.pid"),
		TrustedUserCAKeysFile: caFile, AuthorizedKeysFile: authKeys, User: login,
		AllowTCPForwarding: opts.AllowTCPForwarding, Extra: opts.ExtraConfig,
	})
	writeFile(t, s.ConfigFile, []byte(cfg), 0o644)

	if err := os.MkdirAll("/run/sshd", 0o755); err != nil && os.Geteuid() == 0 {
		t.Fatalf("StartSSHD: privilege separation directory: %v", err)
	}
	s.d = startDaemon(t, "sshd", exec.Command(sshdBin, "-D", "-e", "-f", s.ConfigFile))
	s.d.waitReady(t, 15*time.Second, func() error { return sshBanner(s.Addr) })
	return s
}

// SSHDConfigParams are the inputs of SSHDConfigText.
type SSHDConfigParams struct {
	Port                  int
	HostKeyFile           string
	PidFile               string
	TrustedUserCAKeysFile string
	// AuthorizedKeysFile is a path, or "none".
	AuthorizedKeysFile string
	// User is the only login allowed (AllowUsers).
	User               string
	AllowTCPForwarding bool
	// Extra is appended verbatim.
	Extra string
}

// SSHDConfigText returns the sshd_config that StartSSHD (and the demo)
// use: 127.0.0.1 only, public keys and certificates only (no password, no
// keyboard-interactive, no PAM), one allowed user, no agent or X11
// forwarding, local TCP forwarding only if asked, the sftp subsystem, and
// LogLevel VERBOSE.
func SSHDConfigText(p SSHDConfigParams) string {
	fwd := "no"
	if p.AllowTCPForwarding {
		fwd = "local"
	}
	sftp := "internal-sftp"
	if _, err := os.Stat("/usr/lib/openssh/sftp-server"); err == nil {
		sftp = "/usr/lib/openssh/sftp-server"
	}
	return strings.Join([]string{
		"ListenAddress 127.0.0.1",
		fmt.Sprintf("Port %d", p.Port),
		"HostKey " + p.HostKeyFile,
		"PidFile " + p.PidFile,
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"PermitRootLogin no",
		"TrustedUserCAKeys " + p.TrustedUserCAKeysFile,
		"AuthorizedKeysFile " + p.AuthorizedKeysFile,
		"AllowUsers " + p.User,
		"StrictModes no",
		"AllowTcpForwarding " + fwd,
		"AllowAgentForwarding no",
		"X11Forwarding no",
		"PermitTunnel no",
		"Subsystem sftp " + sftp,
		"LogLevel VERBOSE",
		"PrintMotd no",
		"MaxStartups 100:30:200",
		"MaxSessions 50",
		p.Extra,
	}, "\n") + "\n"
}

// SetTrustedUserCAKeys replaces the trusted user CA lines. sshd reads the
// file at each login, so this works while it runs: start the target
// first, then trust the CA that `gatehouse ssh-config --user-ca` prints
// once gatehouse (whose config needs the target's address and host key)
// is up.
func (s *SSHD) SetTrustedUserCAKeys(t testing.TB, keys string) {
	t.Helper()
	// Write and rename, so a login never reads a half-written file.
	tmp := s.TrustedUserCAKeysFile + ".tmp"
	writeFile(t, tmp, []byte(strings.TrimSpace(keys)+"\n"), 0o644)
	if err := os.Rename(tmp, s.TrustedUserCAKeysFile); err != nil {
		t.Fatalf("SSHD.SetTrustedUserCAKeys: %v", err)
	}
}

// Logs returns everything sshd has logged so far (LogLevel VERBOSE), e.g.
// to check `Accepted certificate ID "..."` for the key ID Gatehouse wrote
// into its certificate.
func (s *SSHD) Logs() string { return s.d.out.String() }

// Stop stops sshd now (existing sessions keep running until their clients
// leave). It is idempotent; the test's cleanup calls it too.
func (s *SSHD) Stop() { s.d.stop() }

// sshBanner connects to addr and expects an SSH-2.0 identification line.
func sshBanner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("unexpected banner %q", line)
	}
	return nil
}

// sshdUser returns the login for the test, creating DefaultSSHUser when the
// test runs as root and it is missing.
func sshdUser(t testing.TB, want string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatalf("StartSSHD: current user: %v", err)
		}
		if want != "" && want != u.Username {
			t.Fatalf("StartSSHD: login %q needs root (running as %s)", want, u.Username)
		}
		return u.Username
	}
	if want == "" {
		want = DefaultSSHUser
	}
	if want == "root" {
		t.Fatalf("StartSSHD: refusing to let root log in; use a test user")
	}
	if _, err := user.Lookup(want); err != nil {
		// Another test process may create it at the same moment: a failed
		// useradd is fine if the user exists afterwards.
		out, err := exec.Command("useradd", "-m", "-s", "/bin/bash", want).CombinedOutput()
		if _, lerr := user.Lookup(want); lerr != nil {
			t.Fatalf("StartSSHD: useradd %s: %v\n%s", want, err, out)
		}
	}
	// With UsePAM no, a "!" (locked) password field refuses even key
	// logins; "*" means "no password" but unlocked. usermod takes a lock on
	// /etc/passwd and fails while another process holds it: retry.
	if locked, err := shadowLocked(want); err != nil || locked {
		var out []byte
		for i := 0; i < 20; i++ {
			if out, err = exec.Command("usermod", "-p", "*", want).CombinedOutput(); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("StartSSHD: usermod -p '*' %s: %v\n%s", want, err, out)
		}
	}
	return want
}

// shadowLocked reports whether login's password field in /etc/shadow starts
// with "!" (locked).
func shadowLocked(login string) (bool, error) {
	data, err := os.ReadFile("/etc/shadow")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) >= 2 && f[0] == login {
			return strings.HasPrefix(f[1], "!"), nil
		}
	}
	return false, fmt.Errorf("%s not in /etc/shadow", login)
}

// writeFile writes a file or fails the test.
func writeFile(t testing.TB, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}
