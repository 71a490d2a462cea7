package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gatehouse-dev/gatehouse/assertion"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/config"
)

// recAudit records audit events.
type recAudit struct{ audittest.Recorder }

// has reports whether an event of type typ whose reason contains sub was
// recorded.
func (a *recAudit) has(typ, sub string) bool {
	return len(a.Find(func(ev audit.Event) bool {
		return ev.Type == typ && strings.Contains(ev.Reason, sub) && ev.Decision == audit.Deny && ev.Source != ""
	})) > 0
}

// testGate stands in for portal's gate: it admits who where authz allows
// the request path it is given (r.URL.Path, as the real gate does), and
// calls the hop with the subject in the context.
func testGate(route config.Route, who authz.Subject, hop http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := authz.DecideRoute(who, &route, time.Hour, r.URL.Path, time.Now())
		if !d.Allow {
			http.Error(w, "denied by gate", http.StatusForbidden)
			return
		}
		hop.ServeHTTP(w, r.WithContext(assertion.WithSubject(r.Context(), who)))
	})
}

// hostileStack is the front, a gate and the hop for app.test (path rule
// /admin for group ops only; alice is not in it) and noapp.test
// (allow_encoded_slashes), both in front of one upstream.
type hostileStack struct {
	f     *Front
	cfg   *config.Config
	audit *recAudit
}

// startHostile serves upstream behind the stack; edit may change the
// config and front config before the front is built.
func startHostile(t *testing.T, upstream http.Handler, edit func(*config.Config, *FrontConfig)) *hostileStack {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	cfg := frontTestConfig(t)
	for i := range cfg.Routes {
		cfg.Routes[i].Upstream = up.URL
	}
	cfg.Routes[0].Paths = []config.PathRule{{Prefix: "/admin", Allow: config.Allow{Groups: []string{"ops"}}}}
	cfg.Routes[1].AllowEncodedSlashes = true
	s := &hostileStack{cfg: cfg, audit: &recAudit{}}
	fc := FrontConfig{Config: cfg, Audit: s.audit, Apps: map[string]http.Handler{}}
	if edit != nil {
		edit(cfg, &fc)
	}
	signer := upSigner(t, upBolt(t), time.Now)
	for _, rt := range cfg.Routes {
		hop, err := NewUpstream(rt, signer, upTestLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = hop.Close() })
		fc.Apps[rt.Host] = testGate(rt, upAlice, hop)
	}
	s.f = runFront(t, fc)
	return s
}

// gaugeValue reads a gauge's current value.
func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
