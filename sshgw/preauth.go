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
	// Defaults 30, 30 and 100: Start is three times PerSource, so one
	// source alone (at its cap) never makes anyone else's connection a
	// gamble; OpenSSH's 10 would let it.
	Start, Rate, Full int
	// Grace is how long a connection may take to authenticate; a pending
	// approval extends it to the approval's expiry. Default 30s.
	Grace time.Duration
	// WaitsPerSource and MaxWaits cap the connections waiting for a person
	// to approve them in a browser, per source and in total. Such a wait
	// lasts minutes, so it leaves the Start/Full pool for this one: waits
	// nobody approves cannot fill the total cap. Defaults 3 and 1000.
	WaitsPerSource, MaxWaits int
}

// Defaults for PreAuth.
const (
	DefaultPreAuthPerSource = 10
	DefaultPreAuthStart     = 30
	DefaultPreAuthRate      = 30
	DefaultPreAuthFull      = 100
	DefaultLoginGrace       = 30 * time.Second
	DefaultWaitsPerSource   = 3
	DefaultMaxWaits         = 1000
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
	if p.WaitsPerSource <= 0 {
		p.WaitsPerSource = DefaultWaitsPerSource
	}
	if p.MaxWaits <= 0 {
		p.MaxWaits = DefaultMaxWaits
	}
	return p
}

// Reasons for a pre-auth refusal, as the metric's reason label.
const (
	refusedPerSource = "per_source"
	refusedTotal     = "total"
	refusedGrace     = "grace_timeout"
	refusedWaits     = "approval_waits"
)

// preauth counts unauthenticated connections per source and in total.
type preauth struct {
	lim     PreAuth
	refused *prometheus.CounterVec // reason
	pending prometheus.Gauge

	mu       sync.Mutex // guards total, per, waits and waitsPer
	total    int
	per      map[string]int
	waits    int
	waitsPer map[string]int
}

// newPreauth returns the counter; with reg non-nil its metrics are
// registered there.
func newPreauth(lim PreAuth, reg prometheus.Registerer) (*preauth, error) {
	p := &preauth{
		lim: lim.withDefaults(),
		per: map[string]int{}, waitsPer: map[string]int{},
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

// park moves one counted connection from addr out of the total into the
// approval waits (see PreAuth.WaitsPerSource); it still counts toward its
// source's PerSource. It returns the function that undoes the move (call
// it after the connection's release), or false when the waits are full.
func (p *preauth) park(addr string) (unpark func(), ok bool) {
	src := identity.SourceKey(addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waits >= p.lim.MaxWaits || p.waitsPer[src] >= p.lim.WaitsPerSource {
		p.refused.WithLabelValues(refusedWaits).Inc()
		return nil, false
	}
	p.total--
	p.pending.Dec()
	p.waits++
	p.waitsPer[src]++
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.total++
			p.pending.Inc()
			p.waits--
			if p.waitsPer[src]--; p.waitsPer[src] <= 0 {
				delete(p.waitsPer, src)
			}
		})
	}, true
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
