package sshgw

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
	"github.com/gatehouse-dev/gatehouse/store"
)

// env is a running gateway with fake identity pieces, a real Bolt store
// and fake targets.
type env struct {
	t         testing.TB
	srv       *Server
	addr      string
	cfg       *config.Config
	dataDir   string
	kr        *secrets.Keyring
	approvals *fakeApprovals
	binds     *fakeBindings
	locks     *fakeLocks
	audit     *fakeAudit
	rec       *fakeRecorder
	store     *store.Bolt
	target    *fakeTarget // pinned host key
	caTarget  *fakeTarget // host certificate from targetCA
	echoAddr  string      // a TCP echo server, listed in prod's forwards
	hostCA    gossh.PublicKey
}

// alice is allowed on every test target; mallory on none.
var (
	alice   = authz.Subject{Email: "alice@example.com", Groups: []string{"sre"}}
	mallory = authz.Subject{Email: "mallory@example.com", Groups: []string{"guests"}}
)

func fresh(s authz.Subject) *authz.Subject {
	s.MFAAt = time.Now()
	return &s
}

// newEnv starts a gateway with targets: prod (pinned key, logins ubuntu
// and postgres, one forward, env ALLOWED), every (mfa every_connection),
// badkey (pinned to the wrong key), viaca (host_ca) and open (remote and
// agent forwarding, x11 on). mutate may change the config before New.
// Each of opts may change the gateway's Config before New.
func newEnv(t testing.TB, limits Limits, mutate func(*config.Config), opts ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, dataDir: t.TempDir(), approvals: newFakeApprovals(), binds: newFakeBindings(),
		locks: &fakeLocks{}, audit: &fakeAudit{}, rec: &fakeRecorder{}}
	e.kr = secretstest.New(t)
	caLine, err := UserCAPublicKey(t.Context(), fileVault(t, e.dataDir, e.kr))
	if err != nil {
		t.Fatal(err)
	}
	userCA, err := parseKeyLine(caLine)
	if err != nil {
		t.Fatal(err)
	}
	host := newSigner(t)
	e.target = startFakeTarget(t, userCA, host)
	targetCA := newSigner(t)
	caHost := newSigner(t)
	hostCert, err := hostCertSigner(caHost, targetCA, []string{"viaca"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.caTarget = startFakeTarget(t, userCA, hostCert)
	e.echoAddr = startEcho(t)

	pin := authorizedKey(host.PublicKey(), "")
	sre := config.Allow{Groups: []string{"sre"}}
	e.cfg = &config.Config{
		PublicURL: "https://gate.test",
		Listen:    config.Listen{SSH: "127.0.0.1:0"},
		DataDir:   e.dataDir,
		MFA:       config.MFA{MaxAge: config.Duration(12 * time.Hour)},
		Targets: []config.Target{
			{Name: "prod", Address: e.target.addr, HostKey: pin, Logins: []string{"ubuntu", "postgres"}, Allow: sre,
				Forwards: []string{e.echoAddr}, Env: []string{"ALLOWED"}},
			{Name: "every", Address: e.target.addr, HostKey: pin, Logins: []string{"ubuntu"}, Allow: sre, MFA: config.MFAEveryConnection},
			{Name: "badkey", Address: e.target.addr, HostKey: authorizedKey(newSigner(t).PublicKey(), ""), Logins: []string{"ubuntu"}, Allow: sre},
			{Name: "viaca", Address: e.caTarget.addr, HostCA: authorizedKey(targetCA.PublicKey(), ""), Logins: []string{"ubuntu"}, Allow: sre},
			{Name: "open", Address: e.target.addr, HostKey: pin, Logins: []string{"ubuntu"}, Allow: sre,
				RemoteForward: true, AgentForward: true, X11: true},
		},
	}
	if mutate != nil {
		mutate(e.cfg)
	}
	e.cfg.ApplyDefaults() // as config.Load does
	e.store, err = store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	sc := Config{Cfg: e.cfg, Secrets: e.kr, Store: e.store, Approvals: e.approvals, Keys: e.binds, Locks: e.locks,
		Audit: e.audit, Logger: testLogger(t), Limits: limits, Recorder: e.rec}
	for _, o := range opts {
		o(&sc)
	}
	e.srv, err = New(sc)
	if err != nil {
		t.Fatal(err)
	}
	e.hostCA = e.srv.keys.hostCA.PublicKey()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return e
}

// startEcho starts a TCP server that echoes what it reads.
func startEcho(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						_, _ = c.Write(buf[:n])
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// client describes one test client connection.
type client struct {
	key     gossh.Signer
	user    string
	noKbd   bool // like BatchMode=yes: no keyboard-interactive
	noAuth  bool // offer nothing but "none"
	mu      sync.Mutex
	prompts []string // keyboard-interactive instructions seen
	banners []string
	onKbd   func(instruction string) // called when the approval prompt arrives
}

func (c *client) banner() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.banners, "")
}

func (c *client) promptCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.prompts)
}

// config returns the x/crypto client config; the gateway's host
// certificate must be signed by hostCA for principal host.
func (c *client) config(hostCA gossh.PublicKey) *gossh.ClientConfig {
	checker := &gossh.CertChecker{
		IsHostAuthority: func(auth gossh.PublicKey, _ string) bool { return bytes.Equal(auth.Marshal(), hostCA.Marshal()) },
	}
	cfg := &gossh.ClientConfig{
		User:              c.user,
		HostKeyCallback:   checker.CheckHostKey,
		HostKeyAlgorithms: []string{gossh.CertAlgoED25519v01},
		BannerCallback: func(m string) error {
			c.mu.Lock()
			c.banners = append(c.banners, m)
			c.mu.Unlock()
			return nil
		},
		Timeout: 10 * time.Second,
	}
	if c.noAuth {
		return cfg
	}
	cfg.Auth = []gossh.AuthMethod{gossh.PublicKeys(c.key)}
	if !c.noKbd {
		cfg.Auth = append(cfg.Auth, gossh.KeyboardInteractive(func(name, instruction string, qs []string, echos []bool) ([]string, error) {
			c.mu.Lock()
			c.prompts = append(c.prompts, instruction)
			c.mu.Unlock()
			if c.onKbd != nil {
				c.onKbd(instruction)
			}
			if len(qs) != 0 {
				return nil, errors.New("unexpected questions")
			}
			return nil, nil
		}))
	}
	return cfg
}

// dial connects c to the gateway.
func (e *env) dial(c *client) (*gossh.Client, error) {
	return gossh.Dial("tcp", e.addr, c.config(e.hostCA))
}

// approveNext approves (or, with who nil, denies) the next approval the
// gateway creates, as the portal would after SSO and WebAuthn.
func (e *env) approveNext(who *authz.Subject) chan string {
	ids := make(chan string, 1)
	go func() {
		select {
		case ap := <-e.approvals.created:
			if err := e.approvals.decide(ap.ID, who); err != nil {
				e.t.Errorf("decide %s: %v", ap.ID, err)
			}
			ids <- ap.ID
		case <-time.After(10 * time.Second):
			close(ids)
		}
	}()
	return ids
}

// bind binds key to who as an earlier approval would have.
func (e *env) bind(key gossh.Signer, who authz.Subject) {
	who.MFAAt = time.Now()
	_ = e.binds.Bind(context.Background(), gossh.FingerprintSHA256(key.PublicKey()), who, time.Hour)
}

// run runs cmd in a new session and returns stdout, stderr and the exit
// status (-1 when the session failed otherwise).
func run(t testing.TB, c *gossh.Client, cmd string, stdin string) (string, string, int) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr, s.Stdin = &out, &errb, strings.NewReader(stdin)
	err = s.Run(cmd)
	var ee *gossh.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitStatus()
	default:
		t.Logf("Run(%q): %v", cmd, err)
		return out.String(), errb.String(), -1
	}
}
