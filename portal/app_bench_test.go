package portal

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// nopUpstream counts admitted requests and answers nothing.
type nopUpstream struct{ n int }

func (u *nopUpstream) ServeHTTP(http.ResponseWriter, *http.Request) { u.n++ }

// BenchmarkAppSessionCheck measures the gate's own cost per request with a
// valid session: cookie parsing, session check and policy decision, without
// the upstream hop. "cached" is the steady state (cache TTL 1s);
// "uncached" opens the cookie and reads the store on every request.
func BenchmarkAppSessionCheck(b *testing.B) {
	e := newPTEnvWith(b, ptOptions{quiet: true})
	c := e.client()
	e.echo(e.login(c, newPTKey(), "https://app.test/", "ann@example.com", "eng"))
	cookie := e.cookie(c, "app.test")
	for _, bc := range []struct {
		name string
		ttl  time.Duration
	}{{"cached", time.Second}, {"uncached", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			up := &nopUpstream{}
			a, err := NewApp(e.cfg.Routes[0], up, AppDeps{Config: e.cfg, Codec: e.codec, Sessions: e.sessions,
				Audit: e.audit, CacheTTL: bc.ttl})
			if err != nil {
				b.Fatal(err)
			}
			req := httptest.NewRequest("GET", "https://app.test/dash?x=1", nil)
			req.Header.Set("Cookie", "theme=dark; "+SessionCookie+"="+cookie+"; other=1")
			w := httptest.NewRecorder()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				a.ServeHTTP(w, req)
			}
			b.StopTimer()
			if up.n == 0 || w.Code != http.StatusOK {
				b.Fatalf("gate admitted %d requests (status %d), want all", up.n, w.Code)
			}
		})
	}
}
