package portal

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/identity"
)

func ptApprovalRequest() identity.ApprovalRequest {
	return identity.ApprovalRequest{SessionID: "conn1", SessionHash: []byte("exchange-hash"),
		KeyFingerprint: "SHA256:abcdefghijklmnop", Target: "prod-db", Login: "ubuntu", Source: "198.51.100.7:50123"}
}

func TestApproveFlow(t *testing.T) {
	e := newPTEnv(t)
	ctx := t.Context()
	req := ptApprovalRequest()
	ap, err := e.approvals.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	page := "https://gate.test/approve/" + ap.ID
	c := e.client()
	key := newPTKey()

	// Without a session the approval link starts a sign-in that comes back.
	res := e.get(c, page)
	want := "/auth/login?rd=" + url.QueryEscape("/approve/"+ap.ID)
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != want {
		t.Fatalf("approval page without session = %d to %q, want %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	res = e.login(c, key, page, "ann@example.com", "eng")
	if res.StatusCode != http.StatusOK || res.Request.URL.Path != "/approve/"+ap.ID {
		t.Fatalf("after sign-in: %d at %s, want the approval page", res.StatusCode, res.Request.URL)
	}
	// Number matching: the page shows where the connection comes from and
	// asks for the code; it never shows the code.
	for _, w := range []string{"SHA256:abcdefghijklmnop", "prod-db", "ubuntu", "198.51.100.7:50123", `id="approve-form"`, `name="code"`, "3 attempts left"} {
		if !strings.Contains(res.body, w) {
			t.Errorf("approval page lacks %q", w)
		}
	}
	if strings.Contains(res.body, ap.Code) || strings.Contains(res.body, strings.ReplaceAll(ap.Code, "-", "")) || strings.Contains(res.body, `id="confirm"`) {
		t.Errorf("approval page shows the code or a checkbox to confirm it")
	}
	csrf := dataAttr(res.body, "csrf")
	post := func(v url.Values) ptResp {
		v.Set("csrf", csrf)
		return e.postForm(c, page, v, "https://gate.test")
	}

	// Approving needs the code typed...
	for _, v := range []url.Values{{"decision": {"approve"}}, {"decision": {"approve"}, "confirm": {"yes"}}, {"decision": {"approve"}, "code": {strings.Repeat("A", 100)}}} {
		if res := post(v); res.StatusCode != http.StatusForbidden {
			t.Errorf("approve with %v = %d, want 403", v, res.StatusCode)
		}
	}
	// ... and a fresh assertion: the one from sign-in is too old now.
	e.clock.Advance(3 * time.Minute)
	if res := post(url.Values{"decision": {"approve"}, "code": {ap.Code}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("approve with a 3-minute-old assertion = %d, want 403", res.StatusCode)
	}
	if got := len(e.audit.find("approval", audit.Deny)); got < 4 {
		t.Errorf("refused approvals audited %d times, want 4", got)
	}
	if a, err := e.approvals.Get(ctx, ap.ID); err != nil || a.State != identity.ApprovalPending || a.CodeAttemptsLeft != identity.MaxCodeAttempts {
		t.Fatalf("approval after refusals = %+v, %v; want pending with every attempt left", a, err)
	}
	// The page's script asserts, then posts. A wrong code shows the page
	// again with the error and the attempts left, still without the code.
	if fin := e.assertWith(c, key, csrf, dataAttr(res.body, "assert-begin"), dataAttr(res.body, "assert-finish")); fin.StatusCode != http.StatusOK {
		t.Fatalf("assertion on the approval page = %d %s", fin.StatusCode, fin.body)
	}
	res = post(url.Values{"decision": {"approve"}, "code": {"WRONG-CODE"}})
	if res.StatusCode != http.StatusForbidden || !strings.Contains(res.body, "not the code your terminal shows") ||
		!strings.Contains(res.body, "2 attempts left") || strings.Contains(res.body, ap.Code) {
		t.Fatalf("wrong code = %d %.600s", res.StatusCode, res.body)
	}
	// The right code, typed loosely (lower case, spaces), approves.
	typed := " " + strings.ToLower(strings.ReplaceAll(ap.Code, "-", " ")) + " "
	res = post(url.Values{"decision": {"approve"}, "code": {typed}})
	if res.StatusCode != http.StatusOK || !strings.Contains(res.body, "Connection approved") {
		t.Fatalf("approve = %d %.300s", res.StatusCode, res.body)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := e.approvals.Wait(wctx, ap.ID, req)
	if err != nil || !got.Approved || got.Email != "ann@example.com" {
		t.Fatalf("Wait = %+v, %v; want approved by ann", got, err)
	}
	// Single use: the link is dead now.
	if res := post(url.Values{"decision": {"approve"}, "code": {ap.Code}}); res.StatusCode != http.StatusNotFound {
		t.Errorf("second approve = %d, want 404", res.StatusCode)
	}
	if res := e.get(c, page); res.StatusCode != http.StatusNotFound {
		t.Errorf("approval page after use = %d, want 404", res.StatusCode)
	}
}

// TestApproveWrongCodesCancel: the third wrong code cancels the approval;
// the waiting connection is refused and the link is dead.
func TestApproveWrongCodesCancel(t *testing.T) {
	e := newPTEnv(t)
	ctx := t.Context()
	req := ptApprovalRequest()
	ap, err := e.approvals.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	page := "https://gate.test/approve/" + ap.ID
	res := e.login(c, newPTKey(), page, "ann@example.com", "eng") // a fresh assertion
	csrf := dataAttr(res.body, "csrf")
	for i, want := range []string{"2 attempts left", "1 attempt left", "Connection refused"} {
		res = e.postForm(c, page, url.Values{"csrf": {csrf}, "decision": {"approve"}, "code": {"ZZZZ-ZZZZ"}}, "https://gate.test")
		if res.StatusCode != http.StatusForbidden || !strings.Contains(res.body, want) {
			t.Fatalf("wrong code %d = %d, want 403 with %q: %.600s", i+1, res.StatusCode, want, res.body)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := e.approvals.Wait(wctx, ap.ID, req); !errors.Is(err, identity.ErrApprovalDenied) {
		t.Errorf("Wait after 3 wrong codes = %v, want ErrApprovalDenied", err)
	}
	res = e.postForm(c, page, url.Values{"csrf": {csrf}, "decision": {"approve"}, "code": {ap.Code}}, "https://gate.test")
	if res.StatusCode == http.StatusOK {
		t.Errorf("the right code after cancellation approved")
	}
}

func TestApproveDeny(t *testing.T) {
	e := newPTEnv(t)
	ctx := t.Context()
	req := ptApprovalRequest()
	ap, err := e.approvals.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	page := "https://gate.test/approve/" + ap.ID
	res := e.login(c, newPTKey(), page, "ann@example.com", "eng")
	csrf := dataAttr(res.body, "csrf")
	e.clock.Advance(3 * time.Minute) // denying needs no fresh assertion
	res = e.postForm(c, page, url.Values{"csrf": {csrf}, "decision": {"deny"}}, "https://gate.test")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.body, "Connection denied") {
		t.Fatalf("deny = %d", res.StatusCode)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := e.approvals.Wait(wctx, ap.ID, req); !errors.Is(err, identity.ErrApprovalDenied) {
		t.Errorf("Wait after deny = %v, want ErrApprovalDenied", err)
	}
}

func TestApproveRefusals(t *testing.T) {
	e := newPTEnv(t)
	ctx := t.Context()
	ap, err := e.approvals.Create(ctx, ptApprovalRequest())
	if err != nil {
		t.Fatal(err)
	}
	// A pending session (SSO without a key) is sent to the key step.
	c := e.client()
	e.signIn(c, "https://gate.test/auth/login", "ann@example.com", "eng")
	res := e.get(c, "https://gate.test/approve/"+ap.ID)
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "/auth/verify?rd=") {
		t.Errorf("pending session on approval page = %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	res = e.postForm(c, "https://gate.test/approve/"+ap.ID, url.Values{"csrf": {csrfToken(e.sessionID(c))}, "decision": {"approve"}, "code": {ap.Code}}, "https://gate.test")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/auth/verify") {
		t.Errorf("pending session approving = %d to %q, want the key step", res.StatusCode, res.Header.Get("Location"))
	}
	// Full session: unknown, oversized and CSRF-less requests.
	full := e.client()
	e.login(full, newPTKey(), "https://gate.test/auth/login", "bob@example.com", "eng")
	csrf := csrfToken(e.sessionID(full))
	tests := []struct {
		name, id string
		v        url.Values
		origin   string
		code     int
	}{
		{"unknown id", "nope", url.Values{"csrf": {csrf}, "decision": {"deny"}}, "https://gate.test", http.StatusNotFound},
		{"oversized id", strings.Repeat("a", 500), url.Values{"csrf": {csrf}, "decision": {"deny"}}, "https://gate.test", http.StatusNotFound},
		{"no csrf", ap.ID, url.Values{"decision": {"deny"}}, "https://gate.test", http.StatusForbidden},
		{"cross origin", ap.ID, url.Values{"csrf": {csrf}, "decision": {"deny"}}, "https://app.test", http.StatusForbidden},
		{"unknown decision", ap.ID, url.Values{"csrf": {csrf}, "decision": {"maybe"}}, "https://gate.test", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.postForm(full, "https://gate.test/approve/"+tt.id, tt.v, tt.origin)
			if res.StatusCode != tt.code {
				t.Errorf("POST = %d, want %d", res.StatusCode, tt.code)
			}
		})
	}
	if a, err := e.approvals.Get(ctx, ap.ID); err != nil || a.State != identity.ApprovalPending {
		t.Errorf("approval after refused requests = %+v, %v; want pending", a, err)
	}
}

func TestInviteEnrolment(t *testing.T) {
	e := newPTEnvWith(t, ptOptions{enrollment: "invite"})
	ctx := t.Context()
	// Without an invite there is no enrolment.
	c := e.client()
	res := e.signIn(c, "https://app.test/", "ann@example.com", "eng")
	res = e.follow(c, ptAbs(res.Request.URL, res.Header.Get("Location")))
	if res.StatusCode != http.StatusForbidden || !strings.Contains(res.body, "Enrolment link needed") {
		t.Fatalf("invite mode without invite = %d", res.StatusCode)
	}
	// Nor with someone else's or a made-up token.
	tok, err := e.invites.Create(ctx, "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	bobTok, err := e.invites.Create(ctx, "bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"made-up", bobTok} {
		page := e.get(c, "https://gate.test/enroll/"+url.PathEscape(bad))
		r := e.postJSON(c, dataAttr(page.body, "register-begin"), dataAttr(page.body, "csrf"), `{}`)
		if r.StatusCode == http.StatusOK {
			t.Errorf("enrolment with token %.8s… began", bad)
		}
	}
	// The invite link, opened in a fresh browser, signs in and enrols.
	c2 := e.client()
	key := newPTKey()
	link := "https://gate.test/enroll?invite=" + url.QueryEscape(tok)
	res = e.get(c2, link)
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "/auth/login?rd=%2Fenroll%2F") {
		t.Fatalf("invite link without session = %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	res = e.signIn(c2, ptAbs(res.Request.URL, res.Header.Get("Location")), "ann@example.com", "eng")
	page := e.follow(c2, ptAbs(res.Request.URL, res.Header.Get("Location")))
	if dataAttr(page.body, "mode") != "enroll" || !strings.Contains(dataAttr(page.body, "register-begin"), "invite=") {
		t.Fatalf("invite page = %d, mode %q", page.StatusCode, dataAttr(page.body, "mode"))
	}
	if to := e.redirectOf(e.ceremony(c2, page, key)); to != "/" {
		t.Errorf("after invite enrolment go to %q, want /", to)
	}
	e.echo(e.follow(c2, "https://app.test/x"))
	// The invite is used up.
	c3 := e.client()
	e.signIn(c3, "https://gate.test/auth/login", "ann@example.com", "eng")
	page = e.get(c3, "https://gate.test/enroll/"+url.PathEscape(tok))
	if !strings.Contains(page.body, "already have a security key") {
		t.Errorf("reused invite page: %d %.200s", page.StatusCode, page.body)
	}
}
