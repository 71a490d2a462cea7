package sshgw

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/internal/testlog"
)

// fakeApprovals implements approvals like identity.Approvals does: bound
// to a session hash and key, single use, with a test-only Approve.
type fakeApprovals struct {
	mu      sync.Mutex
	m       map[string]*fakeApproval
	created chan *identity.Approval
	failAll error // if set, Create fails
}

type fakeApproval struct {
	req     identity.ApprovalRequest
	ap      identity.Approval
	decided chan struct{}
	who     authz.Subject
	denied  bool
	used    bool
}

func newFakeApprovals() *fakeApprovals {
	return &fakeApprovals{m: map[string]*fakeApproval{}, created: make(chan *identity.Approval, 16)}
}

func (f *fakeApprovals) Create(_ context.Context, req identity.ApprovalRequest) (*identity.Approval, error) {
	if f.failAll != nil {
		return nil, f.failAll
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	ap := identity.Approval{ID: id, Code: fmt.Sprintf("%X", b[:3]), URL: "https://gate.test/approve/" + id,
		Expires: time.Now().Add(identity.ApprovalTTL), State: identity.ApprovalPending,
		KeyFingerprint: req.KeyFingerprint, Target: req.Target, Login: req.Login, Source: req.Source}
	f.mu.Lock()
	f.m[id] = &fakeApproval{req: req, ap: ap, decided: make(chan struct{})}
	f.mu.Unlock()
	cp := ap
	f.created <- &cp
	return &ap, nil
}

// decide approves (who != nil) or denies a pending approval.
func (f *fakeApprovals) decide(id string, who *authz.Subject) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.m[id]
	if a == nil || a.used || a.ap.State != identity.ApprovalPending {
		return identity.ErrNotFound
	}
	if who == nil {
		a.denied, a.ap.State = true, identity.ApprovalDenied
	} else {
		a.who, a.ap.State = *who, identity.ApprovalApproved
	}
	close(a.decided)
	return nil
}

func (f *fakeApprovals) Wait(ctx context.Context, id string, req identity.ApprovalRequest) (*identity.Approval, error) {
	f.mu.Lock()
	a := f.m[id]
	f.mu.Unlock()
	if a == nil {
		return nil, identity.ErrNotFound
	}
	if !bytes.Equal(a.req.SessionHash, req.SessionHash) || a.req.KeyFingerprint != req.KeyFingerprint {
		return nil, identity.ErrApprovalMismatch
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-a.decided:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if a.used {
		return nil, identity.ErrNotFound
	}
	a.used = true
	if a.denied {
		return nil, identity.ErrApprovalDenied
	}
	out := a.ap
	out.Email, out.Groups, out.MFAAt, out.Approved = a.who.Email, a.who.Groups, a.who.MFAAt, true
	return &out, nil
}

// fakeBindings implements keyBindings with expiry.
type fakeBindings struct {
	mu   sync.Mutex
	m    map[string]fakeBinding
	ttls []time.Duration // every Bind's ttl
}

type fakeBinding struct {
	who     authz.Subject
	expires time.Time
}

func newFakeBindings() *fakeBindings { return &fakeBindings{m: map[string]fakeBinding{}} }

func (f *fakeBindings) Bind(_ context.Context, fp string, s authz.Subject, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[fp] = fakeBinding{who: s, expires: time.Now().Add(ttl)}
	f.ttls = append(f.ttls, ttl)
	return nil
}

func (f *fakeBindings) Lookup(_ context.Context, fp string) (authz.Subject, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.m[fp]
	if !ok || time.Now().After(b.expires) {
		return authz.Subject{}, fmt.Errorf("lookup: %w", identity.ErrNotFound)
	}
	return b.who, nil
}

func (f *fakeBindings) bound(fp string) bool {
	_, err := f.Lookup(context.Background(), fp)
	return err == nil
}

// fakeLocks implements locks.
type fakeLocks struct {
	mu sync.Mutex
	m  map[string]bool
}

func (f *fakeLocks) Locked(_ context.Context, email string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[email], nil
}

func (f *fakeLocks) set(email string, v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]bool{}
	}
	f.m[email] = v
}

// fakeAudit records events.
type fakeAudit struct{ audittest.Recorder }

// find returns the events for which match is true.
func (f *fakeAudit) find(match func(audit.Event) bool) []audit.Event { return f.Find(match) }

// waitFor polls until match finds an event or the timeout passes.
func (f *fakeAudit) waitFor(t *testing.T, what string, match func(audit.Event) bool) audit.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if ev := f.find(match); len(ev) > 0 {
			return ev[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no audit event %s; have %+v", what, f.find(func(audit.Event) bool { return true }))
	return audit.Event{}
}

// testLogger sends logs to t.Log while the test runs.
func testLogger(t testing.TB) *slog.Logger { return testlog.New(t) }
