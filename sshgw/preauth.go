package sshgw

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// PreAuth caps the connections that have not authenticated yet (from the
// TCP accept until authentication completes or the connection ends), as
// OpenSSH's PerSourceMaxStartups, MaxStartups and LoginGraceTime do, so
// that idle handshakes cannot hold the gateway for others. A zero field
// takes its default.
type PreAuth struct {
	// PerSource is the most unauthenticated connections from one source
	// (an IPv4 address or an IPv6 /64); more are closed before the SSH
	// handshake. Default 10.
	PerSource int
	// Start, Rate and Full are OpenSSH's MaxStartups start:rate:full: from
	// Start unauthenticated connections in total, a new one is refused
	// with probability Rate percent, rising linearly to 100% at Full.
	// Defaults 10, 30 and 100.
	Start, Rate, Full int
	// Grace is how long a connection may take to authenticate; a pending
	// approval extends it to the approval's expiry. Default 30s.
	Grace time.Duration
}

// Defaults for PreAuth.
const (
	DefaultPreAuthPerSource = 10
	DefaultPreAuthStart     = 10
	DefaultPreAuthRate      = 30
	DefaultPreAuthFull      = 100
	DefaultLoginGrace       = 30 * time.Second
)

func (p PreAuth) withDefaults() PreAuth {
	if p.PerSource <= 0 {
		p.PerSource = DefaultPreAuthPerSource
	}
	if p.Full <= 0 {
		p.Full = DefaultPreAuthFull
	}
	if p.Start <= 0 {
		p.Start = min(DefaultPreAuthStart, p.Full)
	}
	if p.Rate <= 0 || p.Rate > 100 {
		p.Rate = DefaultPreAuthRate
	}
	if p.Start > p.Full {
		p.Start = p.Full
	}
	if p.Grace <= 0 {
		p.Grace = DefaultLoginGrace
	}
	return p
}

// Reasons for a pre-auth refusal, as the metric's reason label.
const (
	refusedPerSource = "per_source"
	refusedTotal     = "total"
	refusedGrace     = "grace_timeout"
)

// preauth counts unauthenticated connections per source and in total.
type preauth struct {
	lim     PreAuth
	refused *prometheus.CounterVec // reason
	pending prometheus.Gauge

	mu    sync.Mutex // guards total and per
	total int
	per   map[string]int
}

// newPreauth returns the counter; with reg non-nil its metrics are
// registered there.
func newPreauth(lim PreAuth, reg prometheus.Registerer) (*preauth, error) {
	p := &preauth{
		lim: lim.withDefaults(),
		per: map[string]int{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_ssh_preauth_refused_total",
			Help: "SSH connections closed before authenticating: over the per-source or total cap, or out of login grace time.",
		}, []string{"reason"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_ssh_preauth_connections",
			Help: "SSH connections accepted that have not authenticated yet.",
		}),
	}
	for _, r := range []string{refusedPerSource, refusedTotal, refusedGrace} {
		p.refused.WithLabelValues(r) // export zeros, so alerts see the series
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{p.refused, p.pending} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// admit counts a new connection from addr. It returns the function that
// uncounts it (idempotent), or the reason it is refused.
func (p *preauth) admit(addr string) (release func(), refused string) {
	src := identity.SourceKey(addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.per[src] >= p.lim.PerSource:
		refused = refusedPerSource
	case dropEarly(p.total, p.lim, rand.IntN):
		refused = refusedTotal
	}
	if refused != "" {
		p.refused.WithLabelValues(refused).Inc()
		return nil, refused
	}
	p.per[src]++
	p.total++
	p.pending.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.per[src]--; p.per[src] <= 0 {
				delete(p.per, src)
			}
			p.total--
			p.pending.Dec()
		})
	}, ""
}

// graceExpired counts a connection closed for not authenticating in time.
func (p *preauth) graceExpired() { p.refused.WithLabelValues(refusedGrace).Inc() }

// dropEarly is OpenSSH's MaxStartups decision for a new connection when n
// are unauthenticated: never below Start, always from Full, and in between
// with a probability rising linearly from Rate to 100 percent. intN draws
// a uniform integer in [0, n).
func dropEarly(n int, lim PreAuth, intN func(int) int) bool {
	switch {
	case n >= lim.Full:
		return true
	case n < lim.Start:
		return false
	}
	// Percent, as OpenSSH computes it.
	p := lim.Rate + (100-lim.Rate)*(n-lim.Start)/(lim.Full-lim.Start)
	return intN(100) < p
}
