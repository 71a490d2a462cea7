package proxy

import (
	"net"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Default connection caps of the HTTPS listener (FrontConfig.MaxConns and
// MaxConnsPerSource). 256 per source leaves room for a large office behind
// one NAT address with several browsers each (browsers open at most 6
// HTTP/1.1 connections per host, one HTTP/2 connection); 20000 in total
// stays below common file-descriptor limits with room for the upstream
// side of each connection.
const (
	DefaultMaxConnsPerSource = 256
	DefaultMaxConns          = 20000
)

// Reasons in gatehouse_https_conn_refused_total.
const (
	refusedPerSource = "per_source"
	refusedTotal     = "total"
)

// connMetrics count the HTTPS listener's connections.
type connMetrics struct {
	refused *prometheus.CounterVec // reason
	open    prometheus.Gauge
}

func newConnMetrics(reg prometheus.Registerer) (*connMetrics, error) {
	m := &connMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_https_conn_refused_total",
			Help: "HTTPS connections closed at accept because a cap was reached, by cap (per_source, total).",
		}, []string{"reason"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_https_conns_open",
			Help: "HTTPS connections open now.",
		}),
	}
	for _, c := range []prometheus.Collector{m.refused, m.open} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Both reasons show from the start, so a rate() has a baseline.
	m.refused.WithLabelValues(refusedPerSource)
	m.refused.WithLabelValues(refusedTotal)
	return m, nil
}

// capListener caps open connections per source and in total. A
// connection over a cap is closed as soon as it is accepted, before any
// TLS work, so a flood from one address costs little and cannot crowd out
// other sources.
type capListener struct {
	net.Listener
	perSource, total int
	m                *connMetrics

	mu    sync.Mutex
	open  int
	bySrc map[netip.Prefix]int
}

func newCapListener(ln net.Listener, perSource, total int, m *connMetrics) *capListener {
	return &capListener{Listener: ln, perSource: perSource, total: total, m: m, bySrc: map[netip.Prefix]int{}}
}

// sourceKey is the address a cap counts under: an IPv4 address, or the
// /64 of an IPv6 address (one host usually owns a whole /64).
func sourceKey(a net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{} // one shared bucket for the unparsable
	}
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// Accept returns the next connection within the caps, closing the others.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := sourceKey(c.RemoteAddr())
		if reason := l.take(key); reason != "" {
			l.m.refused.WithLabelValues(reason).Inc()
			_ = c.Close()
			continue
		}
		return &capConn{Conn: c, l: l, key: key}, nil
	}
}

func (l *capListener) take(key netip.Prefix) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.open >= l.total:
		return refusedTotal
	case l.bySrc[key] >= l.perSource:
		return refusedPerSource
	}
	l.open++
	l.bySrc[key]++
	l.m.open.Set(float64(l.open))
	return ""
}

func (l *capListener) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.bySrc[key]--; l.bySrc[key] <= 0 {
		delete(l.bySrc, key)
	}
	l.m.open.Set(float64(l.open))
}

// capConn gives its slot back once, on the first Close.
type capConn struct {
	net.Conn
	l    *capListener
	key  netip.Prefix
	once sync.Once
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}
