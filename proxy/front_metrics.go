package proxy

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// frontMetrics are the HTTPS front door's Prometheus metrics. Labels are
// low-cardinality: the host label is a configured host, "(unknown)" or "-".
type frontMetrics struct {
	requests          *prometheus.CounterVec   // host, code
	duration          *prometheus.HistogramVec // host
	handshakeFailures prometheus.Counter
	websockets        prometheus.Gauge
	// counters and durations hold the series observe has used (metricKey
	// -> Counter, host -> Observer): every request would otherwise hash
	// and look up its label values.
	counters  sync.Map
	durations sync.Map
}

func newFrontMetrics(reg prometheus.Registerer, version string) (*frontMetrics, error) {
	m := &frontMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total",
			Help: "HTTPS requests by host and response status.",
		}, []string{"host", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_http_request_duration_seconds",
			Help:    "Time from request to the end of the response, by host.",
			Buckets: prometheus.DefBuckets,
		}, []string{"host"}),
		handshakeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_tls_handshake_failures_total",
			Help: "TLS handshakes on the HTTPS listener that failed.",
		}),
		websockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_websockets_open",
			Help: "WebSockets tunnelled to upstreams right now.",
		}),
	}
	if version == "" {
		version = buildVersion()
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "gatehouse_build_info",
		Help:        "Always 1; labels name the running build.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	info.Set(1)
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.handshakeFailures, m.websockets, info} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register front metrics: %w", err)
		}
	}
	return m, nil
}

func (m *frontMetrics) observe(host string, code int, d time.Duration) {
	key := metricKey{host, code}
	c, ok := m.counters.Load(key)
	if !ok {
		// Labels are bounded (configured hosts, "(unknown)", "-"; three-digit
		// codes), so this map is too.
		c, _ = m.counters.LoadOrStore(key, m.requests.WithLabelValues(host, strconv.Itoa(code)))
	}
	c.(prometheus.Counter).Inc()
	h, ok := m.durations.Load(host)
	if !ok {
		h, _ = m.durations.LoadOrStore(host, m.duration.WithLabelValues(host))
	}
	h.(prometheus.Observer).Observe(d.Seconds())
}

// metricKey is one series of gatehouse_http_requests_total.
type metricKey struct {
	host string
	code int
}

// buildVersion is the main module's version from the build info, or
// "devel".
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
