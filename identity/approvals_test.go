package identity

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/internal/testlog"
	"github.com/gatehouse-dev/gatehouse/store"
)

// newBubbleEnv is newEnv on the real (inside a bubble: fake) clock, for
// tests under testing/synctest.
func newBubbleEnv(t *testing.T) *env {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	rec := &recorder{}
	return &env{st: st, audit: rec, clk: nil, d: Deps{
		Store: st, Audit: rec,
		Logger: testlog.New(t),
	}}
}

func sshReq() ApprovalRequest {
	return ApprovalRequest{SessionID: "conn-1", SessionHash: []byte("exchange-hash-1"), KeyFingerprint: "SHA256:key1",
		Target: "prod-db", Login: "ubuntu", Source: "203.0.113.9:50000"}
}

func approver() authz.Subject {
	return authz.Subject{Email: "ann@example.com", Groups: []string{"sre"}, MFAAt: time.Now()}
}

type waitResult struct {
	a   *Approval
	err error
}

func startWait(ctx context.Context, ap *Approvals, id string, req ApprovalRequest) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		a, err := ap.Wait(ctx, id, req)
		ch <- waitResult{a, err}
	}()
	return ch
}

func TestApprovalApprove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newBubbleEnv(t)
		ap, err := NewApprovals(e.d, "https://gate.example.com/")
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		a, err := ap.Create(ctx, sshReq())
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if len(a.ID) < 43 || a.URL != "https://gate.example.com/approve/"+a.ID || !a.Expires.Equal(time.Now().Add(ApprovalTTL)) {
			t.Errorf("Create = %+v", a)
		}
		if len(a.Code) != 9 || a.Code[4] != '-' || strings.Trim(strings.ReplaceAll(a.Code, "-", ""), codeAlphabet) != "" {
			t.Errorf("code %q is not XXXX-XXXX from the alphabet", a.Code)
		}
		page, err := ap.Get(ctx, a.ID)
		if err != nil || page.Code != a.Code || page.KeyFingerprint != "SHA256:key1" || page.Target != "prod-db" || page.Login != "ubuntu" || page.State != ApprovalPending {
			t.Fatalf("Get = %+v, %v", page, err)
		}

		res := startWait(ctx, ap, a.ID, sshReq())
		time.Sleep(30 * time.Second)
		synctest.Wait()
		select {
		case r := <-res:
			t.Fatalf("Wait returned before approval: %+v", r)
		default:
		}
		start := time.Now()
		if err := ap.Approve(ctx, a.ID, approver()); err != nil {
			t.Fatalf("Approve: %v", err)
		}
		r := <-res
		if r.err != nil || !r.a.Approved || r.a.Email != "ann@example.com" || r.a.MFAAt.IsZero() {
			t.Fatalf("Wait = %+v, %v", r.a, r.err)
		}
		if time.Since(start) != 0 {
			t.Errorf("Wait noticed the approval after %v; the notification should wake it at once", time.Since(start))
		}
		// Single use.
		if _, err := ap.Wait(ctx, a.ID, sshReq()); !errors.Is(err, ErrNotFound) {
			t.Errorf("second Wait = %v, want ErrNotFound", err)
		}
		if err := ap.Approve(ctx, a.ID, approver()); !errors.Is(err, ErrNotFound) {
			t.Errorf("Approve of a used approval = %v, want ErrNotFound", err)
		}
		if ev := e.audit.find(EventApproval, "allow"); len(ev) != 1 || ev[0].Actor != "ann@example.com" || ev[0].Resource != "target:prod-db" {
			t.Errorf("approval audit = %+v", ev)
		}
	})
}

func TestApprovalBoundToConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newBubbleEnv(t)
		ap, _ := NewApprovals(e.d, "https://gate.example.com")
		ctx := context.Background()
		a, _ := ap.Create(ctx, sshReq())
		if err := ap.Approve(ctx, a.ID, approver()); err != nil {
			t.Fatal(err)
		}
		otherConn := sshReq()
		otherConn.SessionHash = []byte("exchange-hash-2")
		otherKey := sshReq()
		otherKey.KeyFingerprint = "SHA256:key2"
		noHash := sshReq()
		noHash.SessionHash = nil
		for name, req := range map[string]ApprovalRequest{"other connection": otherConn, "other key": otherKey, "no hash": noHash} {
			if _, err := ap.Wait(ctx, a.ID, req); !errors.Is(err, ErrApprovalMismatch) {
				t.Errorf("Wait(%s) = %v, want ErrApprovalMismatch", name, err)
			}
		}
		if n := len(e.audit.find(EventApprovalBind, "deny")); n != 3 {
			t.Errorf("%d mismatch events audited, want 3", n)
		}
		// The replay attempts did not burn it for the right connection.
		if r, err := ap.Wait(ctx, a.ID, sshReq()); err != nil || !r.Approved {
			t.Errorf("Wait on the right connection = %+v, %v", r, err)
		}
	})
}

func TestApprovalDenyExpireAndRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newBubbleEnv(t)
		ap, _ := NewApprovals(e.d, "https://gate.example.com")
		ctx := context.Background()

		denied, _ := ap.Create(ctx, sshReq())
		res := startWait(ctx, ap, denied.ID, sshReq())
		if err := ap.Deny(ctx, denied.ID, approver()); err != nil {
			t.Fatal(err)
		}
		if r := <-res; !errors.Is(r.err, ErrApprovalDenied) {
			t.Errorf("Wait after Deny = %+v, %v; want ErrApprovalDenied", r.a, r.err)
		}

		expiring, _ := ap.Create(ctx, sshReq())
		start := time.Now()
		if _, err := ap.Wait(ctx, expiring.ID, sshReq()); !errors.Is(err, ErrNotFound) {
			t.Errorf("Wait without a decision = %v, want ErrNotFound", err)
		}
		if waited := time.Since(start); waited != ApprovalTTL {
			t.Errorf("Wait gave up after %v, want %v", waited, ApprovalTTL)
		}
		if err := ap.Approve(ctx, expiring.ID, approver()); !errors.Is(err, ErrNotFound) {
			t.Errorf("Approve after expiry = %v, want ErrNotFound", err)
		}

		a, _ := ap.Create(ctx, sshReq())
		noMFA := approver()
		noMFA.MFAAt = time.Time{}
		if err := ap.Approve(ctx, a.ID, noMFA); !errors.Is(err, ErrForbidden) {
			t.Errorf("Approve without MFA = %v, want ErrForbidden", err)
		}
		if err := e.st.Set(ctx, lockKey("ann@example.com"), []byte("{}"), 0); err != nil {
			t.Fatal(err)
		}
		if err := ap.Approve(ctx, a.ID, approver()); !errors.Is(err, ErrLocked) {
			t.Errorf("Approve by a locked person = %v, want ErrLocked", err)
		}
		// The locked person's attempt is a refusal the alerter raises on.
		locked := 0
		for _, ev := range e.audit.find(EventApproval, "deny") {
			if ev.Reason == audit.ReasonLocked && ev.Actor == "ann@example.com" {
				locked++
			}
		}
		if locked != 1 {
			t.Errorf("approval refusals with reason %q = %d, want 1", audit.ReasonLocked, locked)
		}
		_ = e.st.Delete(ctx, lockKey("ann@example.com"))

		// An approval that cannot be audited does not happen.
		e.audit.setFail(true)
		if err := ap.Approve(ctx, a.ID, approver()); err == nil {
			t.Errorf("Approve with the audit log down succeeded")
		}
		e.audit.setFail(false)
		if got, _ := ap.Get(ctx, a.ID); got == nil || got.State != ApprovalPending {
			t.Errorf("approval after failed audit = %+v, want pending", got)
		}

		// ctx cancellation ends Wait.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := ap.Wait(cctx, a.ID, sshReq()); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait with a 10s context = %v, want DeadlineExceeded", err)
		}
	})
}

// silentStore drops every Publish, as a lost notification between replicas
// would.
type silentStore struct{ *store.Bolt }

func (silentStore) Publish(context.Context, string, []byte) error { return nil }

func TestApprovalPollFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newBubbleEnv(t)
		d := e.d
		d.Store = silentStore{e.st}
		ap, _ := NewApprovals(d, "https://gate.example.com")
		ctx := context.Background()
		a, _ := ap.Create(ctx, sshReq())
		res := startWait(ctx, ap, a.ID, sshReq())
		time.Sleep(10 * time.Second)
		if err := ap.Approve(ctx, a.ID, approver()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r := <-res
		if r.err != nil || !r.a.Approved {
			t.Fatalf("Wait = %+v, %v", r.a, r.err)
		}
		if waited := time.Since(start); waited > approvalPoll {
			t.Errorf("poll fallback took %v, want at most %v", waited, approvalPoll)
		}
	})
}

func TestCheckCode(t *testing.T) {
	a := &Approval{Code: "ABCD-EF23"}
	cases := map[string]bool{
		"ABCD-EF23": true, "abcd-ef23": true, "ABCDEF23": true, " abcd ef23 ": true,
		"ABCD-EF24": false, "ABCD-EF2": false, "ABCD-EF233": false, "": false, strings.Repeat("A", 100): false,
	}
	for in, want := range cases {
		if got := CheckCode(a, in); got != want {
			t.Errorf("CheckCode(%q) = %v, want %v", in, got, want)
		}
	}
	if CheckCode(nil, "ABCD-EF23") {
		t.Errorf("CheckCode(nil) = true")
	}
}

func FuzzCheckCode(f *testing.F) {
	f.Add("ABCD-EF23")
	f.Add("abcdef23")
	f.Add("ABCD-EF2\x00")
	a := &Approval{Code: "ABCD-EF23"}
	f.Fuzz(func(t *testing.T, typed string) {
		ok := CheckCode(a, typed)
		canon := strings.ToUpper(strings.NewReplacer("-", "", " ", "", "\t", "").Replace(typed))
		if ok != (canon == "ABCDEF23") {
			t.Fatalf("CheckCode(%q) = %v", typed, ok)
		}
	})
}
