package identity

import "testing"

// BenchmarkSessionCheck measures what the proxy does per request: open the
// app cookie and look up the app session (and its portal session).
func BenchmarkSessionCheck(b *testing.B) {
	e := newEnv(b)
	m := e.sessions(b)
	c := newCodec(b, e)
	p := e.fullSession(b, m, "ann@example.com", portal)
	code, _ := issueHandoff(m, e.ctx(), p.ID, "app.example.com", "/")
	as, _, err := redeemHandoff(m, e.ctx(), code, "app.example.com")
	if err != nil {
		b.Fatal(err)
	}
	v, _ := c.Seal("gh", "app.example.com", as.ID)
	ctx := e.ctx()
	b.ReportAllocs()
	for b.Loop() {
		id, err := c.Open("gh", "app.example.com", v)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Lookup(ctx, id, "app.example.com"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCookieOpen measures the cookie codec alone.
func BenchmarkCookieOpen(b *testing.B) {
	e := newEnv(b)
	c := newCodec(b, e)
	v, _ := c.Seal("gh", "app.example.com", "0123456789012345678901234567890123456789abc")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open("gh", "app.example.com", v); err != nil {
			b.Fatal(err)
		}
	}
}
