package sshgw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/config"
)

// policy is everything the gateway derives from the config: the targets
// with their parsed keys and lists, in config order, and the MFA default.
// It is immutable once built; Reload swaps in a new one as a whole, and
// each decision reads one snapshot, so no decision mixes two configs.
type policy struct {
	cfg        *config.Config
	targets    map[string]*target
	order      []*target // targets in config order, for listings
	defaultMFA time.Duration
}

// buildPolicy parses cfg's targets. It changes nothing: an error leaves
// whatever policy is in force.
func buildPolicy(cfg *config.Config) (*policy, error) {
	// config resolved every default at load (mfa.max_age, each target's
	// mfa_max_age, idle_timeout, max_session): nothing is re-defaulted
	// here, so both doors read the same values.
	p := &policy{cfg: cfg, targets: map[string]*target{}, defaultMFA: cfg.MFA.MaxAge.D()}
	for i := range cfg.Targets {
		t, err := newTarget(fmt.Sprintf("targets[%d]", i), &cfg.Targets[i])
		if err != nil {
			return nil, fmt.Errorf("sshgw: %w", err)
		}
		if p.targets[t.cfg.Name] != nil {
			return nil, fmt.Errorf("sshgw: targets[%d].name: %q is used twice", i, t.cfg.Name)
		}
		p.targets[t.cfg.Name] = t
		p.order = append(p.order, t)
	}
	return p, nil
}

// policy returns the policy in force.
func (s *Server) policy() *policy { return s.pol.Load() }

// CheckReload reports whether Reload would accept cfg, without applying
// it: settings that need a restart (config.RestartRequired) and the whole
// new policy built. serve asks it before swapping anything, so a reload
// reaches both doors or neither.
func (s *Server) CheckReload(cfg *config.Config) error {
	_, err := s.prepare(cfg)
	return err
}

// prepare builds the policy for cfg, or says why cfg cannot be applied.
func (s *Server) prepare(cfg *config.Config) (*policy, error) {
	if cfg == nil {
		return nil, errors.New("sshgw: reload: no config")
	}
	if err := config.RestartRequired(s.policy().cfg, cfg); err != nil {
		return nil, fmt.Errorf("sshgw: reload refused: %w", err)
	}
	p, err := buildPolicy(cfg)
	if err == nil {
		err = p.requiredRecorderCheck(s.recorder)
	}
	if err != nil {
		return nil, fmt.Errorf("sshgw: reload refused: %w", err)
	}
	return p, nil
}

// Reload applies cfg: it builds the whole new policy first and returns an
// error, changing nothing, if cfg cannot be applied. Otherwise new
// connections use the new policy at once, and live connections whose
// person the new policy no longer admits to their target and login are
// ended, with a message to the client and an audit event, as a lock ends
// them.
func (s *Server) Reload(cfg *config.Config) error {
	p, err := s.prepare(cfg)
	if err != nil {
		return err
	}
	s.pol.Store(p)
	n := s.closeAll(func(c *conn) bool { return !c.readmit(p) }, reasonReload)
	s.log.InfoContext(s.ctx, "SSH policy reloaded.", "targets", len(p.order), "closed", n)
	return nil
}

// reasonReload is the audit reason and the client's message when a reload
// ends a connection.
const reasonReload = "policy changed by reload"

// readmit reports whether the connection may stay open under p; if so, and
// its target is still there, it moves the connection to p's target so that
// new channels follow p. A connection still authenticating is kept: it
// decides with the policy it reads when it gets there (see authenticated).
func (c *conn) readmit(p *policy) bool {
	a := c.auth.Load()
	if a == nil {
		return true
	}
	if a.pol == p {
		return true
	}
	if a.target == nil {
		// List mode or a ProxyJump carrier: a listing is computed per
		// request and each jump is an inner connection of its own.
		next := *a
		next.pol = p
		return c.auth.CompareAndSwap(a, &next)
	}
	t := p.targets[a.target.cfg.Name]
	if t == nil || !sameEndpoint(a.target, t) || newlyRecorded(a.target, t) {
		return false
	}
	d := authz.DecideTarget(a.who, t.cfg, a.login, p.defaultMFA, c.s.now())
	if !d.Allow && !d.NeedMFA {
		return false
	}
	next := *a
	next.target, next.pol = t, p
	return c.auth.CompareAndSwap(a, &next)
}

// newlyRecorded reports whether the target's recording went from off to
// required. Recording is fixed when a channel opens, so a connection whose
// channels opened unrecorded cannot be brought under the new rule: it is
// ended rather than left running unrecorded.
func newlyRecorded(old, cur *target) bool {
	return old.cfg.Record == config.RecordOff && cur.cfg.Record == config.RecordRequired
}

// sameEndpoint reports whether a and b reach the same host with the same
// host key check: a live upstream connection was verified against a's.
func sameEndpoint(a, b *target) bool {
	return a.cfg.Address == b.cfg.Address && keyEqual(a.hostKey, b.hostKey) && keyEqual(a.hostCA, b.hostCA)
}

func keyEqual(a, b interface{ Marshal() []byte }) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return bytes.Equal(a.Marshal(), b.Marshal())
}

// endEvent audits that the gateway ended an authenticated connection.
func (c *conn) endEvent(ctx context.Context, a *authResult, reason string) {
	ev := audit.Event{
		Type:     "ssh.end",
		Actor:    a.who.Email,
		Resource: "gateway",
		Action:   "end",
		Decision: audit.Deny,
		Reason:   reason,
		Source:   c.remote.String(),
		Session:  c.id,
	}
	if a.target != nil {
		ev.Resource, ev.Action = "target:"+a.target.cfg.Name, "login "+a.login
	}
	c.s.logAudit(ctx, ev)
}
