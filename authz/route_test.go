package authz

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/google/go-cmp/cmp"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testRoute() *config.Route {
	return &config.Route{
		Name:      "grafana",
		Host:      "grafana.example.com",
		Upstream:  "http://10.0.0.5:3000",
		Allow:     config.Allow{Groups: []string{"engineering"}, Emails: []string{"contractor@partner.example"}},
		MFAMaxAge: config.Duration(time.Hour),
		Paths: []config.PathRule{
			{Prefix: "/admin", Allow: config.Allow{Groups: []string{"sre"}}, MFAMaxAge: config.Duration(15 * time.Minute)},
			{Prefix: "/admin/reports/", Allow: config.Allow{Groups: []string{"finance"}}},
			{Prefix: "/public", Allow: config.Allow{EmailDomains: []string{"example.com"}}},
			{Prefix: "/blocked", Allow: config.Allow{}},
			{Prefix: "/dup", Allow: config.Allow{Groups: []string{"engineering"}}},
			{Prefix: "/dup/", Allow: config.Allow{Groups: []string{"sre"}}, MFAMaxAge: config.Duration(time.Minute)},
		},
	}
}

func TestDecideRoute(t *testing.T) {
	eng := Subject{Email: "eve@example.com", Groups: []string{"engineering"}, MFAAt: now.Add(-10 * time.Minute)}
	sre := Subject{Email: "sam@example.com", Groups: []string{"engineering", "sre"}, MFAAt: now.Add(-10 * time.Minute)}
	fin := Subject{Email: "fay@example.com", Groups: []string{"finance"}, MFAAt: now.Add(-10 * time.Minute)}
	outsider := Subject{Email: "oz@evil-example.com", Groups: []string{"marketing"}, MFAAt: now.Add(-time.Minute)}
	contractor := Subject{Email: "Contractor@Partner.example", MFAAt: now.Add(-time.Minute)}
	staleEng := eng
	staleEng.MFAAt = now.Add(-61 * time.Minute)
	noMFA := eng
	noMFA.MFAAt = time.Time{}
	futureMFA := eng
	futureMFA.MFAAt = now.Add(10 * time.Minute)
	skewMFA := eng
	skewMFA.MFAAt = now.Add(30 * time.Second)
	sreStaleForAdmin := sre
	sreStaleForAdmin.MFAAt = now.Add(-20 * time.Minute)

	tests := []struct {
		name string
		s    Subject
		r    *config.Route
		path string
		want Decision
	}{
		{"group allowed", eng, testRoute(), "/dashboards", Decision{Allow: true, Rule: "route:grafana", Reason: "route grafana: allowed by group engineering"}},
		{"root path", eng, testRoute(), "/", Decision{Allow: true, Rule: "route:grafana", Reason: "route grafana: allowed by group engineering"}},
		{"empty path refused", eng, testRoute(), "", Decision{Rule: "route:grafana", Reason: "route grafana: request path refused (does not start with /)"}},
		{"email allowed case-insensitive", contractor, testRoute(), "/d", Decision{Allow: true, Rule: "route:grafana", Reason: "route grafana: allowed by email contractor@partner.example"}},
		{"outsider denied", outsider, testRoute(), "/d", Decision{Rule: "route:grafana", Reason: "route grafana: group engineering or a personally listed address required"}},
		{"stale mfa", staleEng, testRoute(), "/d", Decision{NeedMFA: true, Rule: "route:grafana", Reason: "route grafana: security key confirmation required (last one older than 1h0m0s)"}},
		{"no mfa ever", noMFA, testRoute(), "/d", Decision{NeedMFA: true, Rule: "route:grafana", Reason: "route grafana: security key confirmation required (last one older than 1h0m0s)"}},
		{"mfa far in future", futureMFA, testRoute(), "/d", Decision{NeedMFA: true, Rule: "route:grafana", Reason: "route grafana: security key confirmation required (last one older than 1h0m0s)"}},
		{"mfa slightly in future (skew)", skewMFA, testRoute(), "/d", Decision{Allow: true, Rule: "route:grafana", Reason: "route grafana: allowed by group engineering"}},
		{"outsider with stale mfa is not NeedMFA", Subject{Email: "x@y.z"}, testRoute(), "/", Decision{Rule: "route:grafana", Reason: "route grafana: group engineering or a personally listed address required"}},
		{"admin needs sre", eng, testRoute(), "/admin", Decision{Rule: "route:grafana:path:/admin", Reason: "route grafana path /admin: group sre required"}},
		{"admin subpath needs sre", eng, testRoute(), "/admin/users", Decision{Rule: "route:grafana:path:/admin", Reason: "route grafana path /admin: group sre required"}},
		{"admin sre allowed", sre, testRoute(), "/admin/users", Decision{Allow: true, Rule: "route:grafana:path:/admin", Reason: "route grafana path /admin: allowed by group sre"}},
		{"admin path mfa stricter", sreStaleForAdmin, testRoute(), "/admin", Decision{NeedMFA: true, Rule: "route:grafana:path:/admin", Reason: "route grafana path /admin: security key confirmation required (last one older than 15m0s)"}},
		{"route mfa still ok outside admin", sreStaleForAdmin, testRoute(), "/dash", Decision{Allow: true, Rule: "route:grafana", Reason: "route grafana: allowed by group engineering"}},
		{"administrator is not admin", eng, testRoute(), "/administrator", Decision{Allow: true, Rule: "route:grafana", Reason: "route grafana: allowed by group engineering"}},
		{"dot-dot refused even for sre", sre, testRoute(), "/public/../admin", Decision{Rule: "route:grafana", Reason: "route grafana: request path refused (segment 2: dot segment or trailing dot)"}},
		{"dot-dot at root", eng, testRoute(), "/../../admin/x", Decision{Rule: "route:grafana", Reason: "route grafana: request path refused (segment 1: dot segment or trailing dot)"}},
		{"double slash", eng, testRoute(), "//admin", Decision{Rule: "route:grafana:path:/admin", Reason: "route grafana path /admin: group sre required"}},
		{"dot segment", eng, testRoute(), "/./admin/.", Decision{Rule: "route:grafana", Reason: "route grafana: request path refused (segment 1: dot segment or trailing dot)"}},
		{"backslash", sre, testRoute(), "/public\\..\\admin", Decision{Rule: "route:grafana", Reason: "route grafana: request path refused (segment 1: backslash)"}},
		{"encoded letters", eng, testRoute(), "/%61dmin", Decision{Rule: "route:grafana:path:/admin", Reason: "route grafana path /admin: group sre required"}},
		{"trailing slash", eng, testRoute(), "/admin/", Decision{Rule: "route:grafana:path:/admin", Reason: "route grafana path /admin: group sre required"}},
		{"upper case", eng, testRoute(), "/ADMIN/x", Decision{Rule: "route:grafana:path:/admin", Reason: "route grafana path /admin: group sre required"}},
		{"semicolon path param", sre, testRoute(), "/admin;jsessionid=1", Decision{Rule: "route:grafana", Reason: "route grafana: request path refused (segment 1: path parameter (;))"}},
		{"relative path", sre, testRoute(), "admin", Decision{Rule: "route:grafana", Reason: "route grafana: request path refused (does not start with /)"}},
		{"longest prefix replaces", sre, testRoute(), "/admin/reports/q1", Decision{Rule: "route:grafana:path:/admin/reports", Reason: "route grafana path /admin/reports: group finance required"}},
		{"longest prefix admits non-member of shorter", fin, testRoute(), "/admin/reports", Decision{Allow: true, Rule: "route:grafana:path:/admin/reports", Reason: "route grafana path /admin/reports: allowed by group finance"}},
		{"longest prefix inherits route mfa", Subject{Email: "f@x.y", Groups: []string{"finance"}, MFAAt: now.Add(-50 * time.Minute)}, testRoute(), "/admin/reports", Decision{Allow: true, Rule: "route:grafana:path:/admin/reports", Reason: "route grafana path /admin/reports: allowed by group finance"}},
		{"path rule can widen", Subject{Email: "pat@example.com", MFAAt: now.Add(-time.Minute)}, testRoute(), "/public/x", Decision{Allow: true, Rule: "route:grafana:path:/public", Reason: "route grafana path /public: allowed by email domain example.com"}},
		{"widened rule does not leak to parent", Subject{Email: "pat@example.com", MFAAt: now.Add(-time.Minute)}, testRoute(), "/x", Decision{Rule: "route:grafana", Reason: "route grafana: group engineering or a personally listed address required"}},
		{"empty path allow blocks all", sre, testRoute(), "/blocked/x", Decision{Rule: "route:grafana:path:/blocked", Reason: "route grafana path /blocked: nobody is allowed (empty allow list)"}},
		{"same prefix twice: all must admit", eng, testRoute(), "/dup/x", Decision{Rule: "route:grafana:path:/dup", Reason: "route grafana path /dup: group sre required"}},
		{"same prefix twice: shortest mfa", Subject{Email: "s@x.y", Groups: []string{"engineering", "sre"}, MFAAt: now.Add(-2 * time.Minute)}, testRoute(), "/dup", Decision{NeedMFA: true, Rule: "route:grafana:path:/dup", Reason: "route grafana path /dup: security key confirmation required (last one older than 1m0s)"}},
		{"nil route", sre, nil, "/", Decision{Rule: "route:", Reason: "no such route"}},
		{"empty route allow", sre, &config.Route{Name: "x"}, "/", Decision{Rule: "route:x", Reason: "route x: nobody is allowed (empty allow list)"}},
		{"empty route allow with other path rule", sre, &config.Route{Name: "x", Paths: []config.PathRule{{Prefix: "/y", Allow: config.Allow{Groups: []string{"sre"}}}}}, "/z", Decision{Rule: "route:x", Reason: "route x: nobody is allowed (empty allow list)"}},
		{"root path rule", eng, &config.Route{Name: "x", Allow: config.Allow{Groups: []string{"engineering"}}, Paths: []config.PathRule{{Prefix: "/", Allow: config.Allow{Groups: []string{"sre"}}}}}, "/q", Decision{Rule: "route:x:path:/", Reason: "route x path /: group sre required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DecideRoute(tt.s, tt.r, 12*time.Hour, tt.path, now)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecideRoute(%+v, %q) mismatch (-want +got):\n%s", tt.s, tt.path, diff)
			}
		})
	}
}

func TestDecideRouteMFADefaults(t *testing.T) {
	r := &config.Route{Name: "r", Allow: config.Allow{Groups: []string{"g"}}}
	tests := []struct {
		name       string
		age        time.Duration
		defaultMFA time.Duration
		want       bool
	}{
		{"within default", 11 * time.Hour, 12 * time.Hour, true},
		{"exactly default", 12 * time.Hour, 12 * time.Hour, true},
		{"past default", 12*time.Hour + time.Second, 12 * time.Hour, false},
		{"zero default fails closed", time.Second, 0, false},
		{"negative default fails closed", time.Second, -time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Subject{Email: "a@b.c", Groups: []string{"g"}, MFAAt: now.Add(-tt.age)}
			got := DecideRoute(s, r, tt.defaultMFA, "/", now)
			if got.Allow != tt.want || got.NeedMFA == tt.want {
				t.Errorf("DecideRoute(age %v, default %v) = %+v, want allow=%v", tt.age, tt.defaultMFA, got, tt.want)
			}
		})
	}
}

func TestReasonsDoNotLeakConfig(t *testing.T) {
	r := &config.Route{
		Name: "app", Upstream: "http://10.9.9.9:1234/secret-path",
		Allow: config.Allow{Emails: []string{"vip@example.com"}, Groups: []string{"g"}},
	}
	d := DecideRoute(Subject{Email: "x@example.com", MFAAt: now}, r, time.Hour, "/", now)
	for _, leak := range []string{"vip@", "10.9.9.9", "secret-path"} {
		if strings.Contains(d.Reason, leak) {
			t.Errorf("reason %q leaks %q", d.Reason, leak)
		}
	}
}

func BenchmarkDecideRoute(b *testing.B) {
	r := testRoute()
	s := Subject{Email: "sam@example.com", Groups: []string{"engineering", "sre"}, MFAAt: now.Add(-time.Minute)}
	b.ReportAllocs()
	for b.Loop() {
		if d := DecideRoute(s, r, time.Hour, "/api/dashboards/uid/abc", now); !d.Allow {
			b.Fatal(d)
		}
	}
}
