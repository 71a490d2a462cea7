package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/e2e/harness"
	"github.com/gatehouse-dev/gatehouse/secrets"
)

// replica is one `gatehouse serve` process.
type replica struct {
	name                      string
	d                         *daemon
	cfgPath                   string
	httpsPort, sshPort, admin int
}

// env is everything the benchmark started: Redis, the HTTP upstream, the
// sshd target and two replicas sharing the Redis, the master key file and
// the recordings directory.
type env struct {
	dir       string
	bin       string
	redis     *daemon
	redisAddr string
	upstream  *http.Server
	upAddr    string
	target    *daemon
	tAddr     string
	login     string // the target's login
	tls       *harness.CA
	replicas  [2]*replica
	hostCAs   []gossh.PublicKey // the replicas' host CAs (the client trusts them)
}

// stop stops everything, replicas first.
func (e *env) stop() {
	for _, r := range e.replicas {
		if r != nil {
			r.d.stop()
		}
	}
	if e.upstream != nil {
		_ = e.upstream.Close()
	}
	e.target.stop()
	e.redis.stop()
}

// setup starts Redis, the upstream and the target, and writes the two
// replicas' configs; it does not start the replicas (see startReplicas),
// so that state can be minted into Redis first.
func setup(dir, bin string) (e *env, err error) {
	e = &env{dir: dir, bin: bin}
	defer func() {
		if err != nil {
			e.stop()
		}
	}()
	if err := os.Chmod(dir, 0o755); err != nil { // the target's login reads nothing here, but sshd checks parents
		return nil, err
	}
	if e.tls, err = harness.CreateCA(dir); err != nil {
		return nil, err
	}
	if err := e.startRedis(); err != nil {
		return nil, err
	}
	if err := e.startUpstream(); err != nil {
		return nil, err
	}
	if err := e.startTarget(); err != nil {
		return nil, err
	}
	return e, e.writeConfigs()
}

func (e *env) startRedis() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	rdir := filepath.Join(e.dir, "redis")
	if err := os.Mkdir(rdir, 0o700); err != nil {
		return err
	}
	e.redisAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	e.redis, err = startDaemon(e.dir, "redis", "redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--dir", rdir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes", "--logfile", "")
	if err != nil {
		return err
	}
	return e.redis.waitFor(func() error {
		c, err := net.DialTimeout("tcp", e.redisAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// upstreamBody is what the upstream answers, followed by the identity
// header Gatehouse set: the client checks both.
const upstreamBody = "bench upstream: "

func (e *env) startUpstream() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	e.upAddr = ln.Addr().String()
	e.upstream = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(upstreamBody + r.Header.Get("X-Gatehouse-User")))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.upstream.Serve(ln) }()
	return nil
}

// startTarget starts Debian's sshd with the e2e harness's sshd_config; it
// trusts no user CA until trustUserCAs writes the replicas' CAs.
func (e *env) startTarget() error {
	var err error
	if e.login, err = targetLogin(); err != nil {
		return err
	}
	hostKey := filepath.Join(e.dir, "target_host")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "target", "-f", hostKey).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	e.tAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := os.WriteFile(e.userCAFile(), nil, 0o644); err != nil {
		return err
	}
	cfg := harness.SSHDConfigText(harness.SSHDConfigParams{
		Port: port, HostKeyFile: hostKey, PidFile: filepath.Join(e.dir, "target.pid"),
		TrustedUserCAKeysFile: e.userCAFile(), AuthorizedKeysFile: "none", User: e.login,
	})
	// Quiet logs, and room for the benchmark's concurrent sessions.
	cfg = strings.Replace(cfg, "LogLevel VERBOSE", "LogLevel ERROR", 1)
	cfg = strings.Replace(cfg, "MaxStartups 100:30:200", "MaxStartups 200:30:400", 1)
	cfgFile := filepath.Join(e.dir, "target_sshd_config")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil && os.Geteuid() == 0 {
		return err
	}
	if e.target, err = startDaemon(e.dir, "target-sshd", "/usr/sbin/sshd", "-D", "-e", "-f", cfgFile); err != nil {
		return err
	}
	return e.target.waitFor(func() error { return sshBanner(e.tAddr) })
}

func (e *env) userCAFile() string { return filepath.Join(e.dir, "target_user_ca") }

// targetLogin is the login on the target: as root, the e2e harness's test
// user (created if missing and unlocked, as UsePAM is off); otherwise the
// current user.
func targetLogin() (string, error) {
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

// replicaConfig is one replica's config. The replicas differ in their
// listeners and data_dir; they share Redis, the master key file and the
// recordings directory, and public_url is replica A's.
const replicaConfig = `public_url: https://gate.localhost:%[1]d
listen:
  https: "127.0.0.1:%[2]d"
  ssh: "127.0.0.1:%[3]d"
  admin: "127.0.0.1:%[4]d"
tls: {mode: files, cert_file: %[5]s, key_file: %[6]s}
data_dir: %[7]s
redis: {addr: %[8]q}
secrets: {master_key_file: %[9]s}
recording: {dir: %[10]s}
sso:
  issuer: https://idp.invalid
  client_id: gatehouse
  client_secret_file: %[11]s
mfa: {max_age: 12h}
log: {level: warn}
routes:
  - name: bench
    host: localhost
    upstream: http://%[12]s
    allow: {groups: [%[13]s]}
targets:
  - name: bench
    address: %[14]q
    host_key: %[15]q
    logins: [%[16]s]
    allow: {groups: [%[13]s]}
admins: {groups: [bench-admins]}
`

// writeConfigs writes both replicas' configs, the shared master key and
// recordings directory, and makes the target trust the replicas' user CAs.
func (e *env) writeConfigs() error {
	cert, key, err := e.tls.IssueFiles("localhost", "gate.localhost")
	if err != nil {
		return err
	}
	shared := filepath.Join(e.dir, "shared")
	recDir := filepath.Join(shared, "recordings")
	if err := os.MkdirAll(recDir, 0o700); err != nil {
		return err
	}
	masterKey := filepath.Join(shared, "master.key")
	if _, err := secrets.CreateKeyFile(masterKey); err != nil {
		return err
	}
	oidcSecret := filepath.Join(shared, "oidc-secret")
	if err := os.WriteFile(oidcSecret, []byte("unused: no sign-in happens\n"), 0o600); err != nil {
		return err
	}
	hostKey, err := os.ReadFile(filepath.Join(e.dir, "target_host.pub"))
	if err != nil {
		return err
	}
	hk := strings.Join(strings.Fields(string(hostKey))[:2], " ")
	for i, name := range []string{"a", "b"} {
		r := &replica{name: name, cfgPath: filepath.Join(e.dir, "gatehouse-"+name+".yaml")}
		for _, p := range []*int{&r.httpsPort, &r.sshPort, &r.admin} {
			if *p, err = freePort(); err != nil {
				return err
			}
		}
		e.replicas[i] = r
	}
	for _, r := range e.replicas {
		data := filepath.Join(e.dir, "data-"+r.name)
		cfg := fmt.Sprintf(replicaConfig, e.replicas[0].httpsPort, r.httpsPort, r.sshPort, r.admin, cert, key,
			data, e.redisAddr, masterKey, recDir, oidcSecret, e.upAddr, benchGroup, e.tAddr, hk, e.login)
		if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
			return err
		}
	}
	return e.trustCAs()
}

// trustCAs asks each replica's config for its SSH CAs (`gatehouse
// ssh-config`): the target trusts every user CA, the benchmark's client
// every host CA. With the CAs shared through the store both replicas name
// the same keys; with per-replica keys in data_dir this still works.
func (e *env) trustCAs() error {
	var userCAs []string
	for _, r := range e.replicas {
		out, err := exec.Command(e.bin, "ssh-config", "--user-ca", "--config", r.cfgPath).Output()
		if err != nil {
			return fmt.Errorf("gatehouse ssh-config --user-ca (replica %s): %w", r.name, err)
		}
		userCAs = append(userCAs, strings.TrimSpace(string(out)))
		out, err = exec.Command(e.bin, "ssh-config", "--config", r.cfgPath).Output()
		if err != nil {
			return fmt.Errorf("gatehouse ssh-config (replica %s): %w", r.name, err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) < 4 || f[0] != "@cert-authority" {
				continue
			}
			k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(strings.Join(f[2:], " ")))
			if err != nil {
				return fmt.Errorf("ssh-config host CA line %q: %w", l, err)
			}
			e.hostCAs = append(e.hostCAs, k)
		}
	}
	if len(e.hostCAs) == 0 {
		return fmt.Errorf("gatehouse ssh-config printed no @cert-authority line")
	}
	fmt.Printf("SSH CAs: replica A and B user CA %s\n", sameOrNot(userCAs[0], userCAs[1]))
	return os.WriteFile(e.userCAFile(), []byte(strings.Join(userCAs, "\n")+"\n"), 0o644)
}

func sameOrNot(a, b string) string {
	if a == b {
		return "identical (shared through the store)"
	}
	return "differ (per-replica keys in data_dir; the target trusts both)"
}

// loadConfig reads replica A's config, with every default resolved as
// serve resolves it (the Redis key prefix, the master key file).
func (e *env) loadConfig() (*config.Config, error) {
	return config.LoadFile(e.replicas[0].cfgPath)
}

// startReplicas starts both replicas and waits until each is ready
// (/readyz) and answers SSH.
func (e *env) startReplicas() error {
	for _, r := range e.replicas {
		d, err := startDaemon(e.dir, "gatehouse-"+r.name, e.bin, "serve", "--config", r.cfgPath)
		if err != nil {
			return err
		}
		r.d = d
	}
	c := &http.Client{Timeout: 2 * time.Second}
	for _, r := range e.replicas {
		err := r.d.waitFor(func() error {
			res, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", r.admin))
			if err != nil {
				return err
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("/readyz: %s", res.Status)
			}
			return sshBanner(fmt.Sprintf("127.0.0.1:%d", r.sshPort))
		})
		if err != nil {
			return fmt.Errorf("replica %s: %w", r.name, err)
		}
	}
	return nil
}

// mint is what the load phases use.
type minted struct {
	hot  []cookieAt     // sessions, one per HTTP client
	cold []cookieAt     // fresh sessions, each used once (cache-miss cost)
	keys []gossh.Signer // SSH keys bound to people
}

// mintAll creates nPeople people (an SSO login and a WebAuthn enrolment
// each), hot+cold app sessions spread over them, and nKeys bound SSH keys.
func (e *env) mintAll(ctx context.Context, nPeople, hot, cold, nKeys int) (*minted, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, err
	}
	m, err := newMinter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer m.close()
	out := &minted{}
	for i := 0; i < nPeople; i++ {
		email := fmt.Sprintf("bench%d@example.com", i)
		s, err := m.portalSession(ctx, email)
		if err != nil {
			return nil, err
		}
		for j := i; j < hot+cold; j += nPeople {
			c, err := m.appCookie(ctx, s, "localhost")
			if err != nil {
				return nil, err
			}
			if j < hot {
				out.hot = append(out.hot, cookieAt{c, email})
			} else {
				out.cold = append(out.cold, cookieAt{c, email})
			}
		}
	}
	for i := 0; i < nKeys; i++ {
		k, err := m.sshKey(ctx, fmt.Sprintf("bench%d@example.com", i%nPeople))
		if err != nil {
			return nil, err
		}
		out.keys = append(out.keys, k)
	}
	return out, nil
}
