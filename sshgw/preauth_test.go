package sshgw

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	gossh "golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/secrets/secretstest"
)

// idle opens a raw TCP connection from local that does nothing after the
// server's version line. It reports whether the server sent that line
// (false: closed before the SSH handshake).
func idle(t *testing.T, addr string, local net.IP) (net.Conn, bool) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading the version line: %v", err)
	}
	return nc, strings.HasPrefix(line, "SSH-2.0-")
}

// value reads a counter's or gauge's value.
func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func refusedCount(t *testing.T, p *preauth, reason string) float64 {
	return value(t, p.refused.WithLabelValues(reason))
}

func TestPreAuthPerSourceCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, Limits{}, nil, func(c *Config) {
		c.PreAuth = PreAuth{PerSource: 3, Start: 50, Full: 50}
		c.Metrics = reg
	})
	key := newSigner(t)
	e.bind(key, alice)
	one := net.ParseIP("127.0.0.1")
	for i := range 3 {
		if _, ok := idle(t, e.addr, one); !ok {
			t.Fatalf("idle connection %d refused", i+1)
		}
	}
	if _, ok := idle(t, e.addr, one); ok {
		t.Fatal("fourth idle connection from one source got an SSH handshake")
	}
	// Another address still gets in.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{user: "ubuntu@prod", key: key, noKbd: true}
	cc, chans, reqs, err := gossh.NewClientConn(nc, e.addr, c.config(e.hostCA))
	if err != nil {
		t.Fatalf("login from another address: %v", err)
	}
	cl := gossh.NewClient(cc, chans, reqs)
	defer cl.Close()
	if out, _, code := run(t, cl, "echo in", ""); out != "in\n" || code != 0 {
		t.Errorf("session from another address: %q, %d", out, code)
	}
	if n := refusedCount(t, e.srv.pre, refusedPerSource); n != 1 {
		t.Errorf("per_source refusals = %v, want 1", n)
	}
	if n := value(t, e.srv.pre.pending); n != 3 {
		t.Errorf("unauthenticated connections = %v, want 3 (the authenticated one left the count)", n)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, f := range fams {
		found[f.GetName()] = len(f.GetMetric())
	}
	if found["gatehouse_ssh_preauth_refused_total"] != 3 || found["gatehouse_ssh_preauth_connections"] != 1 {
		t.Errorf("registered metrics = %v", found)
	}
}

func TestPreAuthTotalCap(t *testing.T) {
	e := newEnv(t, Limits{}, nil, func(c *Config) { c.PreAuth = PreAuth{PerSource: 100, Start: 2, Full: 2} })
	lo := net.ParseIP("127.0.0.1")
	for i := range 2 {
		if _, ok := idle(t, e.addr, lo); !ok {
			t.Fatalf("idle connection %d refused", i+1)
		}
	}
	if _, ok := idle(t, e.addr, net.ParseIP("127.0.0.3")); ok {
		t.Fatal("connection over the total cap got an SSH handshake")
	}
	if n := refusedCount(t, e.srv.pre, refusedTotal); n != 1 {
		t.Errorf("total refusals = %v, want 1", n)
	}
}

func TestDropEarly(t *testing.T) {
	lim := PreAuth{Start: 10, Rate: 30, Full: 100}
	draw := func(v int) func(int) int { return func(int) int { return v } }
	tests := []struct {
		n, draw int
		want    bool
	}{
		{9, 0, false},   // below start: never
		{10, 29, true},  // at start: rate percent
		{10, 30, false}, //
		{55, 64, true},  // halfway: 30 + 70*45/90 = 65 percent
		{55, 65, false}, //
		{100, 99, true}, // full: always
	}
	for _, tc := range tests {
		if got := dropEarly(tc.n, lim, draw(tc.draw)); got != tc.want {
			t.Errorf("dropEarly(n=%d, draw=%d) = %v, want %v", tc.n, tc.draw, got, tc.want)
		}
	}
}

// memStore is the gateway's state store in memory, for a synctest bubble.
type memStore struct {
	mu sync.Mutex
	n  map[string]int64
}

func (m *memStore) Incr(_ context.Context, key string, _ time.Duration) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		m.n = map[string]int64{}
	}
	m.n[key]++
	return m.n[key], nil
}

// Publish delivers nothing: no test in a bubble terminates or locks.
func (m *memStore) Publish(context.Context, string, []byte) error { return nil }

func (m *memStore) Subscribe(ctx context.Context, _ string) (<-chan []byte, error) {
	ch := make(chan []byte)
	context.AfterFunc(ctx, func() { close(ch) })
	return ch, nil
}

// pipeListener hands the server in-memory connections.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return jumpAddr{"pipe"} }

func TestPreAuthGraceTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := New(Config{Cfg: &config.Config{PublicURL: "https://gate.test"}, DataDir: t.TempDir(), Secrets: secretstest.New(t), Store: &memStore{},
			Approvals: newFakeApprovals(), Keys: newFakeBindings(), Locks: &fakeLocks{}, Audit: &fakeAudit{},
			Logger: testLogger(t), PreAuth: PreAuth{Grace: 30 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()
		client, server := net.Pipe()
		ln.conns <- server
		closed := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, client); close(closed) }()

		time.Sleep(29 * time.Second)
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("idle connection closed before the grace time")
		default:
		}
		if n := value(t, s.pre.pending); n != 1 {
			t.Errorf("unauthenticated connections = %v, want 1", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		select {
		case <-closed:
		default:
			t.Fatal("idle connection still open after the grace time")
		}
		if n := refusedCount(t, s.pre, refusedGrace); n != 1 {
			t.Errorf("grace_timeout refusals = %v, want 1", n)
		}
		if n := value(t, s.pre.pending); n != 0 {
			t.Errorf("unauthenticated connections = %v, want 0", n)
		}
		client.Close()
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
}
