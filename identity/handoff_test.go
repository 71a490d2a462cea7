package identity

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// testNonce is the trip nonce of the one browser in tests that are not
// about the browser binding (TestBoundHandoff is).
const testNonce = "test-browser-nonce"

// issueHandoff issues a code bound to testNonce's browser.
func issueHandoff(m *Sessions, ctx context.Context, portalSessionID, host, path string) (string, error) {
	return m.IssueBoundHandoff(ctx, portalSessionID, host, path, HandoffBinding(testNonce))
}

// redeemHandoff redeems code in testNonce's browser.
func redeemHandoff(m *Sessions, ctx context.Context, code, host string) (*Session, string, error) {
	return m.RedeemBoundHandoff(ctx, code, host, testNonce)
}

func TestHandoffNonce(t *testing.T) {
	a, err := NewHandoffNonce()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewHandoffNonce()
	if err != nil {
		t.Fatal(err)
	}
	if a == b || len(a) != 43 || strings.Trim(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Errorf("nonces %q, %q: want two distinct 256-bit URL-safe values", a, b)
	}
	bind := HandoffBinding(a)
	if len(bind) != handoffBindingLen || bind == HandoffBinding(b) || strings.Contains(bind, a) {
		t.Errorf("HandoffBinding(%q) = %q", a, bind)
	}
}

// TestBoundHandoff is issue 12 defect 4: a handoff code works only in the
// browser that started the trip, once.
func TestBoundHandoff(t *testing.T) {
	e := newEnv(t)
	m := e.sessions(t)
	ctx := e.ctx()
	const app = "grafana.example.com"
	p := e.fullSession(t, m, "ann@example.com", portal)
	mine, err := NewHandoffNonce()
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewHandoffNonce()
	if err != nil {
		t.Fatal(err)
	}
	issue := func() string {
		t.Helper()
		code, err := m.IssueBoundHandoff(ctx, p.ID, app, "/d/x?y=1", HandoffBinding(mine))
		if err != nil {
			t.Fatalf("IssueBoundHandoff: %v", err)
		}
		return code
	}

	// The right nonce redeems once; a replay fails, even with the nonce.
	code := issue()
	as, path, err := m.RedeemBoundHandoff(ctx, code, app, mine)
	if err != nil {
		t.Fatalf("RedeemBoundHandoff: %v", err)
	}
	if path != "/d/x?y=1" || as.Host != app || as.Parent != p.Handle || as.Email != "ann@example.com" {
		t.Errorf("RedeemBoundHandoff = %+v, %q", as, path)
	}
	if _, _, err := m.RedeemBoundHandoff(ctx, code, app, mine); !errors.Is(err, ErrNotFound) {
		t.Errorf("replayed code = %v, want ErrNotFound", err)
	}

	// A wrong or missing nonce (another browser) fails and burns the code:
	// the right browser cannot use it afterwards either.
	redeem := func(c, host, nonce string) error { _, _, err := m.RedeemBoundHandoff(ctx, c, host, nonce); return err }
	for _, tt := range []struct {
		name string
		try  func(code string) error
	}{
		{"another browser's nonce", func(c string) error { return redeem(c, app, other) }},
		{"no nonce", func(c string) error { return redeem(c, app, "") }},
		{"oversized nonce", func(c string) error { return redeem(c, app, strings.Repeat(mine, 4)) }},
		{"the binding as nonce", func(c string) error { return redeem(c, app, HandoffBinding(mine)) }},
		{"right nonce, other host", func(c string) error { return redeem(c, "evil.example.com", mine) }},
	} {
		code := issue()
		if err := tt.try(code); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", tt.name, err)
		}
		if err := redeem(code, app, mine); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: code not burnt, right browser then got %v", tt.name, err)
		}
	}

	// Expiry.
	code = issue()
	e.clk.Advance(HandoffTTL + time.Second)
	if _, _, err := m.RedeemBoundHandoff(ctx, code, app, mine); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired code = %v, want ErrNotFound", err)
	}

	// Malformed bindings are refused at issue time.
	for _, bad := range []string{"", mine, strings.ToUpper(HandoffBinding(mine)), HandoffBinding(mine) + "0", strings.Repeat("g", 64)} {
		if _, err := m.IssueBoundHandoff(ctx, p.ID, app, "/", bad); !errors.Is(err, ErrForbidden) {
			t.Errorf("IssueBoundHandoff(binding %q) = %v, want ErrForbidden", bad, err)
		}
	}
	// The return path is checked too.
	if _, err := m.IssueBoundHandoff(ctx, p.ID, app, "//evil.example", HandoffBinding(mine)); !errors.Is(err, ErrForbidden) {
		t.Errorf("IssueBoundHandoff(//evil.example) = %v, want ErrForbidden", err)
	}

	denied := e.audit.find(EventHandoff, "deny")
	var reasons []string
	for _, ev := range denied {
		reasons = append(reasons, ev.Reason)
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"another browser's nonce", "without its browser's nonce"} {
		if !strings.Contains(all, want) {
			t.Errorf("no audit event for %q in:\n%s", want, all)
		}
	}
	if strings.Contains(all, mine) || strings.Contains(all, other) {
		t.Errorf("audit log carries a nonce")
	}
}
