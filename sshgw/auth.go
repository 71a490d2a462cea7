package sshgw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
)

// errRefused is the error behind every refused authentication step; what
// the user sees is the banner next to it.
var errRefused = errors.New("sshgw: authentication refused")

// Brief refusals shown to the user. Details go to the audit log only.
const (
	msgUnknownTarget = "unknown target"
	msgNotAllowed    = "not allowed"
	msgLoginDenied   = "login not allowed"
	msgLocked        = "account locked"
	msgRateLimited   = "too many attempts, try again later"
	msgUnavailable   = "temporarily unavailable, try again later"
	msgTargetDown    = "target unavailable"
	msgApprovalGone  = "approval expired or refused"
	msgApprovalDeny  = "approval denied"
)

// refuse returns an authentication error that shows "gatehouse: msg" to
// the user as an SSH banner.
func refuse(msg string) error {
	return &gossh.BannerError{Err: errRefused, Message: "gatehouse: " + msg + "\n"}
}

// refuseNone is the NoClientAuthCallback: the "none" method never logs in,
// even if something sets NoClientAuth.
func refuseNone(gossh.ConnMetadata) (*gossh.Permissions, error) { return nil, errRefused }

// Permission extensions naming the authenticated person for the session.
const (
	extEmail   = "gatehouse-email"
	extGroups  = "gatehouse-groups" // JSON array
	extMFAAt   = "gatehouse-mfa-at" // RFC 3339
	extKey     = "gatehouse-key"    // SHA256 fingerprint
	extSession = "gatehouse-session"
	extTarget  = "gatehouse-target"
	extLogin   = "gatehouse-login"
)

// serverConfig returns the SSH server settings for c. Only the publickey
// method is offered first; keyboard-interactive is offered only after a
// verified key, through a PartialSuccessError, so every approval is bound
// to a key the client proved it holds.
func (c *conn) serverConfig() *gossh.ServerConfig {
	cfg := &gossh.ServerConfig{
		Config:       cryptoConfig(serverCiphers),
		NoClientAuth: false,
		// Never used while NoClientAuth is false; refuses if it were set.
		NoClientAuthCallback:      refuseNone,
		VerifiedPublicKeyCallback: c.verifiedKey,
		PublicKeyAuthAlgorithms:   userKeyAlgos,
		MaxAuthTries:              6,
		ServerVersion:             "SSH-2.0-Gatehouse",
		BannerCallback:            c.banner,
		AuthLogCallback:           c.authLog,
	}
	if c.jump != nil {
		// The inner ProxyJump handshake runs without gliderlabs. Offers are
		// answered "ok" so the client signs; verifiedKey decides.
		cfg.PublicKeyCallback = func(gossh.ConnMetadata, gossh.PublicKey) (*gossh.Permissions, error) { return nil, nil }
	}
	cert, err := hostCertSigner(c.s.keys.host, c.s.keys.hostCA, c.s.hostPrincipals(c.jump), c.s.now())
	if err != nil {
		c.log.ErrorContext(c.ctx, "Cannot make a host certificate.", "error", err)
	} else {
		cfg.AddHostKey(cert)
	}
	if c.jump != nil || err != nil {
		// The outer connection also gets the plain host key from
		// gliderlabs; the inner one needs a key even without the cert.
		cfg.AddHostKey(c.s.keys.host)
	}
	return cfg
}

// banner runs at the first authentication request. It explains an invalid
// user name right away, since such a name is refused before the client
// signs anything (see New's PublicKeyHandler).
func (c *conn) banner(meta gossh.ConnMetadata) string {
	if _, _, err := ParseUser(meta.User()); err != nil {
		c.markDenied()
		ev := c.authEvent("")
		ev.Decision, ev.Reason, ev.Details = audit.Deny, err.Error(), nil
		c.s.logAudit(c.ctx, ev)
		return "gatehouse: " + err.Error() + "\n"
	}
	return ""
}

// request is what the user name asks for.
type request struct {
	login  string
	target *target // nil: list mode
	name   string  // the target name as given (for audit), "" in list mode
}

// parseRequest interprets the SSH user name for this connection under
// policy p.
func (c *conn) parseRequest(p *policy, user string) (request, string, error) {
	login, name, err := ParseUser(user)
	if err != nil {
		return request{}, err.Error(), err
	}
	if c.jump != nil {
		// Inner ProxyJump connection: the target is the channel's; the
		// user name is the login, or LOGIN@TARGET for the same target.
		if name != "" && name != c.jump.cfg.Name {
			return request{}, msgUnknownTarget, fmt.Errorf("user name names target %q inside a jump to %q", name, c.jump.cfg.Name)
		}
		if !validLogin(login) {
			return request{}, errUserLogin.Error(), errUserLogin
		}
		// The jump was admitted under the policy of its channel; decide
		// with the target as p has it (a reload may have removed it).
		name = c.jump.cfg.Name
		if t := p.targets[name]; t != nil && sameEndpoint(t, c.jump) {
			return request{login: login, target: t, name: name}, "", nil
		}
		return request{name: name}, msgUnknownTarget, fmt.Errorf("target %q changed by a reload during the jump", name)
	}
	if name == "" {
		return request{}, "", nil // list mode (or ProxyJump carrier)
	}
	t := p.targets[name]
	if t == nil {
		return request{name: name}, msgUnknownTarget, fmt.Errorf("unknown target %q", name)
	}
	return request{login: login, target: t, name: name}, "", nil
}

// verifiedKey decides after the client proved it holds key: log in with the
// person bound to the key, refuse, or ask for an approval.
//
// Rate limits count every proof per (source, key), but count against the
// source as a whole only the attempts that fail or bring an unbound key:
// behind a NAT, one noisy key must not lock out the bound keys of others.
func (c *conn) verifiedKey(meta gossh.ConnMetadata, key gossh.PublicKey, _ *gossh.Permissions, _ string) (*gossh.Permissions, error) {
	ctx := c.ctx
	p := c.s.policy()
	fp := gossh.FingerprintSHA256(key)
	ev := c.authEvent(fp)
	req, msg, err := c.parseRequest(p, meta.User())
	ev.Resource = req.resource()
	if err != nil {
		return nil, c.fail(ctx, ev, msg, err.Error())
	}
	ev.Action = req.action()
	if err := c.s.limiter.keyProof(ctx, c.remote.String(), fp); err != nil {
		return nil, c.deny(ctx, ev, limitMsg(err), "auth rate limit: "+err.Error())
	}
	// A locked key or target is refused before anything else, approvals
	// included: nobody can approve their way past it.
	if msg, why := c.s.checkLocks(ctx, "", fp, req.name); msg != "" {
		return nil, c.fail(ctx, ev, msg, why)
	}
	who, err := c.s.bindings.Lookup(ctx, fp)
	switch {
	case errors.Is(err, identity.ErrNotFound):
		if err := c.s.limiter.failure(ctx, c.remote.String()); err != nil {
			return nil, c.deny(ctx, ev, limitMsg(err), "auth rate limit: "+err.Error())
		}
		return nil, c.askApproval(fp, req)
	case err != nil:
		return nil, c.deny(ctx, ev, msgUnavailable, "key binding lookup: "+err.Error())
	}
	ev.Actor = who.Email
	if msg, why := c.s.checkLock(ctx, who.Email); msg != "" {
		return nil, c.fail(ctx, ev, msg, why)
	}
	if req.target == nil {
		return c.finish(ev, &authResult{who: who, fp: fp, method: "publickey", pol: p})
	}
	d := authz.DecideTarget(who, req.target.cfg, req.login, p.defaultMFA, c.s.now())
	switch {
	case d.Allow && !d.EveryConnection:
		return c.finish(ev, &authResult{who: who, fp: fp, login: req.login, target: req.target, method: "publickey", pol: p})
	case d.Allow || d.NeedMFA:
		// Per-connection MFA or a stale assertion: ask again.
		return nil, c.askApproval(fp, req)
	default:
		return nil, c.fail(ctx, ev, denyMsg(req), d.Reason)
	}
}

// fail is deny for an attempt that counts against its source's failure
// limit. The count only shapes later attempts: this one is refused anyway.
func (c *conn) fail(ctx context.Context, ev audit.Event, msg, why string) error {
	if err := c.s.limiter.failure(ctx, c.remote.String()); err != nil && !errors.Is(err, errRateLimited) {
		c.log.WarnContext(ctx, "Cannot count a failed SSH authentication.", "error", err)
	}
	return c.deny(ctx, ev, msg, why)
}

// askApproval answers a verified key with partial success: the client must
// now complete keyboard-interactive, which runs the approval.
func (c *conn) askApproval(fp string, req request) error {
	return &gossh.PartialSuccessError{Next: gossh.ServerAuthCallbacks{
		KeyboardInteractiveCallback: func(meta gossh.ConnMetadata, challenge gossh.KeyboardInteractiveChallenge) (*gossh.Permissions, error) {
			return c.approve(meta, challenge, fp, req)
		},
	}}
}

// finish completes authentication: it connects to the target (if any),
// records the result on the connection and audits the login.
func (c *conn) finish(ev audit.Event, a *authResult) (*gossh.Permissions, error) {
	ctx := c.ctx
	if a.approval != "" {
		// The approval may have taken minutes: a key or target locked
		// meanwhile refuses it (the person's lock was checked after it).
		if msg, why := c.s.checkLocks(ctx, "", a.fp, a.targetName()); msg != "" {
			return nil, c.deny(ctx, ev, msg, why)
		}
	}
	if a.target != nil {
		up, err := c.s.dialTarget(ctx, a.target, a.login, a.who, c.id)
		if err != nil {
			up := ev
			up.Type, up.Decision, up.Reason = "ssh.upstream", audit.Deny, err.Error()
			if errors.Is(err, errHostKeyMismatch) {
				up.Reason = "host key mismatch: " + err.Error()
			}
			c.s.logAudit(ctx, up)
			return nil, c.deny(ctx, ev, msgTargetDown, "cannot connect to target")
		}
		a.up = up
	}
	ev.Decision, ev.Reason = audit.Allow, "authenticated by "+a.method
	if err := c.s.audit.Log(ctx, ev); err != nil {
		// No audit trail, no access.
		c.log.ErrorContext(ctx, "Cannot write audit event; refusing login.", "error", err)
		if a.up != nil {
			a.up.Close()
		}
		return nil, refuse(msgUnavailable)
	}
	c.authenticated(a)
	// A lock message handled while the target was dialled did not match
	// this connection yet (it was not authenticated): look once more now
	// that it would, so such a lock ends it at once, not at the next
	// periodic re-check.
	if msg, why := c.s.checkLocks(ctx, a.who.Email, a.fp, a.targetName()); msg != "" {
		if a.up != nil {
			a.up.Close()
		}
		return nil, c.deny(ctx, ev, msg, why)
	}
	c.log.InfoContext(ctx, "SSH login.", "user", a.who.Email, "target", a.targetName(), "login", a.login, "method", a.method)
	groups, _ := json.Marshal(a.who.Groups)
	return &gossh.Permissions{Extensions: map[string]string{
		extEmail:   a.who.Email,
		extGroups:  string(groups),
		extMFAAt:   a.who.MFAAt.UTC().Format(time.RFC3339),
		extKey:     a.fp,
		extSession: c.id,
		extTarget:  a.targetName(),
		extLogin:   a.login,
	}}, nil
}

func (a *authResult) targetName() string {
	if a.target == nil {
		return ""
	}
	return a.target.cfg.Name
}

// checkLock returns the refusal message and audit reason if email is
// locked or the lock cannot be checked (fail closed).
func (s *Server) checkLock(ctx context.Context, email string) (msg, why string) {
	return s.checkLocks(ctx, email, "", "")
}

// authEvent starts the audit event for an authentication decision.
func (c *conn) authEvent(fp string) audit.Event {
	return audit.Event{
		Type:    "ssh.auth",
		Source:  c.remote.String(),
		Session: c.id,
		Details: map[string]string{"key": fp},
	}
}

// deny audits a refusal with the detailed reason and returns the brief
// message for the user.
func (c *conn) deny(ctx context.Context, ev audit.Event, msg, why string) error {
	c.markDenied()
	ev.Decision, ev.Reason = audit.Deny, why
	c.s.logAudit(ctx, ev)
	return refuse(msg)
}

// logAudit writes e; a failure is logged (the decision it records is a
// refusal or has already failed closed).
func (s *Server) logAudit(ctx context.Context, e audit.Event) {
	if err := s.audit.Log(context.WithoutCancel(ctx), e); err != nil {
		s.log.ErrorContext(ctx, "Cannot write audit event.", "type", e.Type, "error", err)
	}
}

func (r request) resource() string {
	if r.name == "" {
		return "gateway"
	}
	return "target:" + r.name
}

func (r request) action() string {
	if r.target == nil {
		return "list"
	}
	return "login " + r.login
}

// denyMsg tells a person who is not allowed why, briefly: the login or the
// target as a whole.
func denyMsg(r request) string {
	for _, l := range r.target.cfg.Logins {
		if l == r.login {
			return msgNotAllowed
		}
	}
	return msgLoginDenied
}

func limitMsg(err error) string {
	if errors.Is(err, errRateLimited) {
		return msgRateLimited
	}
	return msgUnavailable
}

// mfaMaxAge returns the MFA age limit that applies to t under p (t nil:
// the default).
func (p *policy) mfaMaxAge(t *target) time.Duration {
	if t != nil && t.cfg.MFAMaxAge.D() > 0 {
		return t.cfg.MFAMaxAge.D()
	}
	return p.defaultMFA
}

// everyConnection reports whether t wants an approval for every connection.
func everyConnection(t *target) bool {
	return t != nil && t.cfg.MFA == config.MFAEveryConnection
}

// sanitize makes a string from a peer safe to print on a terminal.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
