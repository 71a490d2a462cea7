package identity

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gatehouse-dev/gatehouse/authz"
)

// wrongCode returns a well-formed code that differs from code.
func wrongCode(code string) string {
	if code[0] == 'A' {
		return "B" + code[1:]
	}
	return "A" + code[1:]
}

// TestApproveWithCode is issue 12's approval phishing: approving needs the
// code the terminal shows, typed; wrong codes are limited and the last one
// cancels the approval for the waiting connection.
func TestApproveWithCode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newBubbleEnv(t)
		ap, _ := NewApprovals(e.d, "https://gate.example.com")
		ctx := context.Background()
		created := time.Now()
		a, err := ap.Create(ctx, sshReq())
		if err != nil {
			t.Fatal(err)
		}
		page, err := ap.Get(ctx, a.ID)
		if err != nil || page.Source != "203.0.113.9:50000" || page.KeyFingerprint != "SHA256:key1" ||
			!page.Created.Equal(created) || page.CodeAttemptsLeft != MaxCodeAttempts {
			t.Fatalf("Get = %+v, %v; want source, fingerprint, creation time and %d attempts", page, err, MaxCodeAttempts)
		}

		// Without an assertion nothing is counted.
		if err := ap.ApproveWithCode(ctx, a.ID, authz.Subject{Email: "ann@example.com"}, a.Code); !errors.Is(err, ErrForbidden) {
			t.Errorf("ApproveWithCode without MFA = %v, want ErrForbidden", err)
		}
		// A wrong code is refused and counted.
		err = ap.ApproveWithCode(ctx, a.ID, approver(), wrongCode(a.Code))
		if !errors.Is(err, ErrWrongCode) || errors.Is(err, ErrApprovalDenied) {
			t.Fatalf("wrong code = %v, want ErrWrongCode only", err)
		}
		if page, _ := ap.Get(ctx, a.ID); page.State != ApprovalPending || page.CodeAttemptsLeft != MaxCodeAttempts-1 {
			t.Errorf("after one wrong code: %+v", page)
		}
		// The right code, typed loosely, approves.
		typed := strings.ToLower(strings.ReplaceAll(a.Code, "-", " "))
		if err := ap.ApproveWithCode(ctx, a.ID, approver(), typed); err != nil {
			t.Fatalf("ApproveWithCode(%q) = %v", typed, err)
		}
		if r, err := ap.Wait(ctx, a.ID, sshReq()); err != nil || !r.Approved || r.Email != "ann@example.com" {
			t.Errorf("Wait = %+v, %v", r, err)
		}
		if err := ap.ApproveWithCode(ctx, a.ID, approver(), a.Code); !errors.Is(err, ErrNotFound) {
			t.Errorf("approving a used approval = %v, want ErrNotFound", err)
		}

		// MaxCodeAttempts wrong codes cancel it, and the waiting connection
		// learns at once.
		b, _ := ap.Create(ctx, sshReq())
		res := startWait(ctx, ap, b.ID, sshReq())
		synctest.Wait()
		for i := 1; i <= MaxCodeAttempts; i++ {
			err := ap.ApproveWithCode(ctx, b.ID, approver(), "")
			if !errors.Is(err, ErrWrongCode) || errors.Is(err, ErrApprovalDenied) != (i == MaxCodeAttempts) {
				t.Fatalf("wrong code %d = %v", i, err)
			}
		}
		start := time.Now()
		if r := <-res; !errors.Is(r.err, ErrApprovalDenied) {
			t.Errorf("Wait after cancellation = %+v, %v; want ErrApprovalDenied", r.a, r.err)
		}
		if time.Since(start) != 0 {
			t.Errorf("the waiting connection learnt after %v", time.Since(start))
		}
		// Cancelled for good: the right code no longer helps.
		if err := ap.ApproveWithCode(ctx, b.ID, approver(), b.Code); !errors.Is(err, ErrNotFound) {
			t.Errorf("right code after cancellation = %v, want ErrNotFound", err)
		}
		denied := e.audit.find(EventApproval, "deny")
		if len(denied) != MaxCodeAttempts+1 || !strings.Contains(denied[len(denied)-1].Reason, "cancelled after 3 wrong") {
			t.Errorf("wrong codes audited as %+v", denied)
		}
		for _, ev := range denied {
			if strings.Contains(ev.Reason+ev.Details["attempt"], a.Code) || strings.Contains(ev.Reason, b.Code) {
				t.Errorf("audit event carries the code: %+v", ev)
			}
		}

		// The right code does not approve for a locked account.
		c, _ := ap.Create(ctx, sshReq())
		m, err := NewSessions(e.d, SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		k, _ := NewKeyBindings(e.d)
		locks, err := NewLocks(e.d, m, k)
		if err != nil {
			t.Fatal(err)
		}
		if err := locks.Lock(ctx, "ann@example.com", "admin", "test"); err != nil {
			t.Fatal(err)
		}
		if err := ap.ApproveWithCode(ctx, c.ID, approver(), c.Code); !errors.Is(err, ErrLocked) {
			t.Errorf("locked ApproveWithCode = %v, want ErrLocked", err)
		}
	})
}
