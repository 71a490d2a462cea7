package identity

import (
	"errors"
	"testing"

	vw "github.com/descope/virtualwebauthn"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// A locked person's assertion is refused and audited as a refusal with
// audit.ReasonLocked, which the alerter raises on at once; a failed one is
// a webauthn.assert refusal with the person as actor (the failures rule).
func TestWebAuthnAuditsLockedAndFailedAssertions(t *testing.T) {
	e := newWAEnv(t, "")
	ctx := e.ctx()
	key := newAuthenticator(vw.AuthenticatorOptions{})
	e.enrol(t, e.login(t, "ann@example.com"), key, "")
	s := e.login(t, "ann@example.com")

	if _, err := e.w.FinishAssertion(ctx, s, nil); err == nil {
		t.Fatal("FinishAssertion without a ceremony succeeded")
	}
	if evs := e.audit.find(EventAssert, audit.Deny); len(evs) != 1 || evs[0].Actor != "ann@example.com" {
		t.Fatalf("failed assertion audited as %+v, want one refusal of ann@example.com", evs)
	}

	if err := e.st.Set(ctx, lockKey("ann@example.com"), []byte("{}"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.w.BeginAssertion(ctx, s); !errors.Is(err, ErrLocked) {
		t.Errorf("BeginAssertion when locked = %v, want ErrLocked", err)
	}
	evs := e.audit.find(EventAssert, audit.Deny)
	if len(evs) != 2 || evs[1].Reason != audit.ReasonLocked || evs[1].Actor != "ann@example.com" {
		t.Errorf("locked assertion audited as %+v, want a refusal of ann@example.com with reason %q", evs, audit.ReasonLocked)
	}
}
