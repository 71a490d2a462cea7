package sshgw

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/config"
	gossh "golang.org/x/crypto/ssh"
)

// dialTimeout bounds connecting to a target, handshake included.
const dialTimeout = 10 * time.Second

// errHostKeyMismatch means the target presented a host key that is neither
// the pinned one nor certified by its host CA for its name or address.
var errHostKeyMismatch = errors.New("target host key does not match the configuration")

// target is a configured target with its policy parsed once.
type target struct {
	cfg      *config.Target
	addrHost string          // the host part of cfg.Address
	hostKey  gossh.PublicKey // pinned host key, or nil
	hostCA   gossh.PublicKey // host CA, or nil
	forwards map[string]bool // allowed direct-tcpip destinations, "host:port"
	env      map[string]bool // environment variable names passed on
	idle     time.Duration
	maxLife  time.Duration
}

// newTarget parses t's keys and lists; path names it in errors.
func newTarget(path string, t *config.Target) (*target, error) {
	host, _, err := net.SplitHostPort(t.Address)
	if err != nil {
		return nil, fmt.Errorf("%s.address: %w", path, err)
	}
	tg := &target{
		cfg:      t,
		addrHost: host,
		forwards: map[string]bool{},
		env:      map[string]bool{},
		idle:     t.IdleTimeout.D(),
		maxLife:  t.MaxSession.D(),
	}
	switch {
	case t.HostKey != "" && t.HostCA == "":
		if tg.hostKey, err = parseKeyLine(t.HostKey); err != nil {
			return nil, fmt.Errorf("%s.host_key: %w", path, err)
		}
	case t.HostCA != "" && t.HostKey == "":
		if tg.hostCA, err = parseKeyLine(t.HostCA); err != nil {
			return nil, fmt.Errorf("%s.host_ca: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("%s: exactly one of host_key or host_ca is required", path)
	}
	for _, f := range t.Forwards {
		tg.forwards[f] = true
	}
	for _, e := range t.Env {
		tg.env[e] = true
	}
	return tg, nil
}

// parseKeyLine parses one authorized_keys-format public key (not a
// certificate).
func parseKeyLine(s string) (gossh.PublicKey, error) {
	k, _, _, rest, err := gossh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("not an SSH public key: %w", err)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one key")
	}
	if _, ok := k.(*gossh.Certificate); ok {
		return nil, errors.New("a certificate, want a public key")
	}
	return k, nil
}

// hostKeyCallback verifies the target's host key: an exact match with the
// pinned key, or a host certificate from the target's CA naming the target
// (its name or its address's host). Never trust on first use.
func (t *target) hostKeyCallback(hostname string, remote net.Addr, key gossh.PublicKey) error {
	if t.hostKey != nil {
		if bytes.Equal(key.Marshal(), t.hostKey.Marshal()) {
			return nil
		}
		return fmt.Errorf("%w: got %s %s", errHostKeyMismatch, key.Type(), gossh.FingerprintSHA256(key))
	}
	cert, ok := key.(*gossh.Certificate)
	if !ok {
		return fmt.Errorf("%w: got a plain %s key, want a certificate", errHostKeyMismatch, key.Type())
	}
	checker := &gossh.CertChecker{
		IsHostAuthority: func(auth gossh.PublicKey, _ string) bool {
			return bytes.Equal(auth.Marshal(), t.hostCA.Marshal())
		},
	}
	var errs []error
	for _, name := range []string{t.cfg.Address, net.JoinHostPort(t.cfg.Name, "22")} {
		err := checker.CheckHostKey(name, remote, cert)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("%w: %w", errHostKeyMismatch, errors.Join(errs...))
}

// clientHostKeyAlgos returns the host key algorithms to ask the target for.
func (t *target) clientHostKeyAlgos() []string {
	if t.hostKey != nil {
		return hostKeyAlgos(t.hostKey)
	}
	return hostCertAlgos
}

// certExtensions returns the certificate permissions that the target's
// policy allows: a pty always, forwarding and X11 only when configured.
func (t *target) certExtensions() map[string]string {
	ext := map[string]string{"permit-pty": ""}
	if len(t.cfg.Forwards) > 0 || t.cfg.RemoteForward {
		ext["permit-port-forwarding"] = ""
	}
	if t.cfg.AgentForward {
		ext["permit-agent-forwarding"] = ""
	}
	if t.cfg.X11 {
		ext["permit-X11-forwarding"] = ""
	}
	return ext
}

// userCert makes an ephemeral key and a certificate for it from the user
// CA: principal login, key ID naming the person and the session.
func userCert(ca gossh.Signer, t *target, login, email, sessionID string, now time.Time) (gossh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	cert := &gossh.Certificate{
		Key:             key.PublicKey(),
		Serial:          randomSerial(),
		CertType:        gossh.UserCert,
		KeyId:           "gatehouse:" + email + ":" + sessionID,
		ValidPrincipals: []string{login},
		ValidAfter:      uint64(now.Add(-userCertBackdate).Unix()),
		ValidBefore:     uint64(now.Add(userCertLife).Unix()),
		Permissions:     gossh.Permissions{Extensions: t.certExtensions()},
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		return nil, fmt.Errorf("sign user certificate: %w", err)
	}
	return gossh.NewCertSigner(cert, key)
}

// dialTarget connects to t as login with a fresh certificate for who and
// returns the client and the channels the target opens toward us.
func (s *Server) dialTarget(ctx context.Context, t *target, login string, who authz.Subject, sessionID string) (*targetConn, error) {
	signer, err := userCert(s.keys.userCA, t, login, who.Email, sessionID, s.now())
	if err != nil {
		return nil, err
	}
	cfg := &gossh.ClientConfig{
		Config:            cryptoConfig(clientCiphers),
		User:              login,
		Auth:              []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback:   t.hostKeyCallback,
		HostKeyAlgorithms: t.clientHostKeyAlgos(),
		ClientVersion:     "SSH-2.0-Gatehouse",
		Timeout:           dialTimeout,
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	d := net.Dialer{}
	nc, err := d.DialContext(ctx, "tcp", t.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("dial target: %w", err)
	}
	// Bound the handshake; stop waiting when ctx ends (client gone).
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	cc, chans, reqs, err := gossh.NewClientConn(s.transport(nc), t.cfg.Address, cfg)
	stopped := stop()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("ssh handshake with target: %w", err)
	}
	if !stopped {
		cc.Close()
		return nil, fmt.Errorf("ssh handshake with target: %w", ctx.Err())
	}
	_ = nc.SetDeadline(time.Time{})
	return newTargetConn(cc, chans, reqs), nil
}
