package sshgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	glssh "github.com/gliderlabs/ssh"
	"github.com/prometheus/client_golang/prometheus"
	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/secrets"
)

// approvals is the subset of *identity.Approvals the gateway uses.
type approvals interface {
	Create(ctx context.Context, req identity.ApprovalRequest) (*identity.Approval, error)
	Wait(ctx context.Context, id string, req identity.ApprovalRequest) (*identity.Approval, error)
}

// keyBindings is the subset of *identity.KeyBindings the gateway uses.
type keyBindings interface {
	Bind(ctx context.Context, fingerprint string, s authz.Subject, ttl time.Duration) error
	Lookup(ctx context.Context, fingerprint string) (authz.Subject, error)
}

// locks is the subset of *identity.Locks the gateway uses: checks at
// authentication, and every lock at once for the periodic re-check.
type locks interface {
	Held(ctx context.Context, refs ...identity.LockRef) (identity.LockRef, bool, error)
	All(ctx context.Context) (identity.LockSet, error)
}

// stateStore is the subset of store.Store the gateway uses: counters for
// rate limits, and the lock and terminate channels, on which a lock or a
// reviewer's termination on any replica reaches every replica.
type stateStore interface {
	counter
	Publish(ctx context.Context, channel string, msg []byte) error
	Subscribe(ctx context.Context, channel string) (<-chan []byte, error)
}

// auditLog is the subset of *audit.Log the gateway uses.
type auditLog interface {
	Log(ctx context.Context, e audit.Event) error
}

var (
	_ approvals   = (*identity.Approvals)(nil)
	_ keyBindings = (*identity.KeyBindings)(nil)
	_ locks       = (*identity.Locks)(nil)
)

// Config holds what New needs. Every interface field is required.
type Config struct {
	// Cfg is the loaded configuration (targets, mfa, public_url), its
	// defaults resolved by config (Load, or ApplyDefaults for one built in
	// code).
	Cfg *config.Config
	// KeyVault keeps the host key and the CAs, sealed (shared by every
	// replica when it is the store). If nil, they are sealed files in
	// DataDir (empty: Cfg.DataDir) under Secrets (see FileVault).
	KeyVault *secrets.Vault
	DataDir  string
	Secrets  *secrets.Keyring
	// Store keeps rate-limit counters and carries lock notifications.
	Store     stateStore
	Approvals approvals
	Keys      keyBindings
	Locks     locks
	Audit     auditLog
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// Limits are the authentication rate limits; zero fields take defaults.
	Limits Limits
	// PreAuth caps connections that have not authenticated yet; zero
	// fields take defaults (MaxStartups 30:30:100, 10 per source, 30s to
	// authenticate).
	PreAuth PreAuth
	// Recorder records every session channel and forward to a target
	// whose record setting is required (the default). Nil is allowed
	// only if every target has record: off; New and Reload refuse a
	// config that needs a recorder without one.
	Recorder Recorder
	// Metrics, if set, receives the gateway's Prometheus metrics (pre-auth
	// refusals and unauthenticated connections); nil registers none.
	Metrics prometheus.Registerer
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Server is the SSH bastion. Create it with New, run it with Serve, apply
// a new config with Reload and stop it with Shutdown.
type Server struct {
	pol  atomic.Pointer[policy] // the policy in force; see Reload
	keys *keys
	pre  *preauth

	approvals approvals
	bindings  keyBindings
	locks     locks
	store     stateStore
	audit     auditLog
	recorder  Recorder
	limiter   *limiter
	log       *slog.Logger
	now       func() time.Time

	gl       *glssh.Server
	bufs     bufPool // relay buffers (relayBufSize)
	readBufs bufPool // readAhead buffers (readAheadSize)
	// ctx is the server's lifetime; Shutdown cancels it, which ends every
	// pending approval wait and the lock watcher.
	ctx    context.Context
	cancel context.CancelFunc

	watchOnce sync.Once
	wg        sync.WaitGroup // the lock watcher

	mu        sync.Mutex                // guards live, listeners, shut
	live      map[*conn]struct{}        // authenticated connections, outer and inner
	listeners map[net.Listener]struct{} // listeners passed to Serve
	shut      bool                      // Shutdown was called
}

// New checks cfg, loads (or creates) the host key and CAs from the key
// vault and returns a Server ready to Serve.
func New(c Config) (*Server, error) {
	switch {
	case c.Cfg == nil:
		return nil, errors.New("sshgw: Config.Cfg is required")
	case c.Store == nil, c.Approvals == nil, c.Keys == nil, c.Locks == nil, c.Audit == nil:
		return nil, errors.New("sshgw: Config.Store, Approvals, Keys, Locks and Audit are required")
	}
	pol, err := buildPolicy(c.Cfg)
	if err != nil {
		return nil, err
	}
	if err := pol.requiredRecorderCheck(c.Recorder); err != nil {
		return nil, err
	}
	pre, err := newPreauth(c.PreAuth, c.Metrics)
	if err != nil {
		return nil, fmt.Errorf("sshgw: metrics: %w", err)
	}
	k, err := newKeys(c)
	if err != nil {
		return nil, fmt.Errorf("sshgw: %w", err)
	}
	s := &Server{
		bufs:      bufPool{size: relayBufSize},
		readBufs:  bufPool{size: readAheadSize},
		keys:      k,
		pre:       pre,
		approvals: c.Approvals,
		bindings:  c.Keys,
		locks:     c.Locks,
		store:     c.Store,
		audit:     c.Audit,
		recorder:  c.Recorder,
		log:       c.Logger,
		now:       c.Now,
		live:      map[*conn]struct{}{},
		listeners: map[net.Listener]struct{}{},
	}
	s.pol.Store(pol)
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.limiter = &limiter{c: c.Store, limits: c.Limits.withDefaults(), now: s.now}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.gl = &glssh.Server{
		Version:              "Gatehouse",
		HostSigners:          []glssh.Signer{k.host},
		ConnCallback:         s.connCallback,
		ServerConfigCallback: s.serverConfig,
		// gliderlabs sets NoClientAuth = true when none of its handlers is
		// set. This handler keeps it false; it only vets the user name
		// before the client signs. The decision is made after the
		// signature is verified, in conn.verifiedKey, which can ask for
		// keyboard-interactive (a PartialSuccessError) as gliderlabs'
		// boolean handlers cannot.
		PublicKeyHandler: func(ctx glssh.Context, _ glssh.PublicKey) bool {
			_, _, err := ParseUser(ctx.User())
			return err == nil
		},
		ConnectionFailedCallback: s.connFailed,
		ChannelHandlers: map[string]glssh.ChannelHandler{
			"session":      s.channelHandler,
			"direct-tcpip": s.channelHandler,
		},
		RequestHandlers: map[string]glssh.RequestHandler{
			"tcpip-forward":        s.globalRequest,
			"cancel-tcpip-forward": s.globalRequest,
		},
		SubsystemHandlers: map[string]glssh.SubsystemHandler{},
	}
	return s, nil
}

// Serve accepts connections on ln until Shutdown. It returns nil after
// Shutdown, or the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	// Track ln ourselves: gliderlabs' Shutdown misses a listener whose
	// Serve has not registered it yet, which would then never close.
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	s.watchOnce.Do(func() {
		s.wg.Add(3)
		go s.watch(identity.LockChannel, s.onLock)
		go s.watch(TerminateChannel, s.onTerminate)
		go s.recheckLocks()
	})
	err := s.gl.Serve(ln)
	s.mu.Lock()
	shut := s.shut
	s.mu.Unlock()
	if shut || errors.Is(err, glssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, ends pending approvals, and waits
// for open connections to end until ctx is done; then it closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shut = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	s.cancel()
	err := s.gl.Shutdown(ctx)
	if errors.Is(err, net.ErrClosed) {
		err = nil // we closed the listeners above
	}
	if err != nil {
		// Deadline passed: cut the remaining connections.
		_ = s.gl.Close()
		s.closeAll(func(*conn) bool { return true }, "gateway shutting down")
	}
	s.wg.Wait()
	return err
}

// watch delivers the messages on a store channel to handle until
// Shutdown, subscribing again if the subscription fails or ends.
func (s *Server) watch(channel string, handle func([]byte)) {
	defer s.wg.Done()
	for s.ctx.Err() == nil {
		msgs, err := s.store.Subscribe(s.ctx, channel)
		if err != nil {
			s.log.ErrorContext(s.ctx, "Cannot subscribe to a store channel; retrying.", "channel", channel, "error", err)
			select {
			case <-s.ctx.Done():
			case <-time.After(time.Second): // a real pause between retries, not a clock reading
			}
			continue
		}
		for m := range msgs {
			handle(m)
		}
	}
}

// onLock ends the connections under a lock placed on any replica (a
// person's, a key's or a target's), within a second of the lock.
func (s *Server) onLock(m []byte) {
	s.endLocked(identity.ParseLockMessage(m))
}

// closeAll closes every live connection for which match is true, telling
// the client and the audit log reason, and returns how many. They close
// in parallel: telling each client waits a moment at most.
func (s *Server) closeAll(match func(*conn) bool, reason string) int {
	return s.closeAllBy(match, reason, "")
}

// closeAllBy is closeAll naming who ends the connections.
func (s *Server) closeAllBy(match func(*conn) bool, reason, by string) int {
	s.mu.Lock()
	var hit []*conn
	for c := range s.live {
		if match(c) {
			hit = append(hit, c)
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range hit {
		wg.Go(func() { c.closeBy(reason, by) })
	}
	wg.Wait()
	return len(hit)
}

func (s *Server) track(c *conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.live[c] = struct{}{}
	} else {
		delete(s.live, c)
	}
}

// connFailed logs a handshake that did not complete (auth refused, client
// gone, protocol error). Refusals are audited where they are decided.
func (s *Server) connFailed(nc net.Conn, err error) {
	s.log.DebugContext(s.ctx, "SSH handshake ended without a session.", "remote", nc.RemoteAddr().String(), "error", err)
}

// serverConfig is gliderlabs' ServerConfigCallback: the SSH settings and
// authentication callbacks for one connection.
func (s *Server) serverConfig(ctx glssh.Context) *gossh.ServerConfig {
	c, _ := ctx.Value(connKey).(*conn)
	if c == nil {
		// Cannot happen: connCallback always stores the conn. Refuse all.
		return refuseAllConfig()
	}
	return c.serverConfig()
}

// refuseAllConfig is a server configuration under which no client can
// authenticate.
func refuseAllConfig() *gossh.ServerConfig {
	return &gossh.ServerConfig{
		Config:               cryptoConfig(serverCiphers),
		NoClientAuthCallback: refuseNone,
		PublicKeyCallback:    func(gossh.ConnMetadata, gossh.PublicKey) (*gossh.Permissions, error) { return nil, errRefused },
		VerifiedPublicKeyCallback: func(gossh.ConnMetadata, gossh.PublicKey, *gossh.Permissions, string) (*gossh.Permissions, error) {
			return nil, errRefused
		},
	}
}
