package portal

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/recording"
)

func TestReviewListForReviewer(t *testing.T) {
	rv := newRVEnv(t)
	_, res := rv.reviewer("rita@example.com", "security")
	if res.StatusCode != http.StatusOK || res.Request.URL.Path != "/review/" {
		t.Fatalf("reviewer after sign-in: %d at %s, want the console's list", res.StatusCode, res.Request.URL)
	}
	// Newest first, whatever order the index answers in.
	iLive, iMid, iOld := strings.Index(res.body, `data-id="rec-live"`), strings.Index(res.body, `data-id="rec-mid"`), strings.Index(res.body, `data-id="rec-old"`)
	if iLive < 0 || iMid < 0 || iOld < 0 || !(iLive < iMid && iMid < iOld) {
		t.Errorf("list order: live %d, mid %d, old %d; want all three, newest first", iLive, iMid, iOld)
	}
	for _, w := range []string{`href="/review/s/rec-live?live=1"`, `action="/review/s/rec-live/terminate"`, `class="badge live"`,
		`href="/review/s/rec-old"`, "1m30s", "incomplete", "<code class=\"cmd\">uptime</code>", "3 sessions"} {
		if !strings.Contains(res.body, w) {
			t.Errorf("list page lacks %q", w)
		}
	}
	// Only the live session can be watched or terminated.
	if strings.Contains(res.body, `/review/s/rec-old/terminate`) || strings.Contains(res.body, `rec-old?live=1`) {
		t.Errorf("list page offers Watch or Terminate for an ended session")
	}
	if csp := res.Header.Get("Content-Security-Policy"); csp != pageCSP {
		t.Errorf("list page CSP = %q, want the portal's %q", csp, pageCSP)
	}
}

func TestReviewSearchPassesTheFilter(t *testing.T) {
	rv := newRVEnv(t)
	c, _ := rv.reviewer("rita@example.com", "security")
	q := url.Values{"q": {" secret   word "}, "user": {"ann@example.com"}, "target": {"prod-db"}, "login": {"ubuntu"},
		"status": {"complete"}, "since": {"2026-01-02T03:04"}, "until": {"2026-01-03T00:00:30"}, "min": {"5m"}, "max": {"2h"}}
	res := rv.get(c, "https://gate.test/review/?"+q.Encode())
	if res.StatusCode != http.StatusOK {
		t.Fatalf("search = %d", res.StatusCode)
	}
	got := rv.rec.lastFilter(t)
	want := recording.Filter{User: "ann@example.com", Target: "prod-db", Login: "ubuntu", Status: "complete", Query: "secret   word",
		Since: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Until: time.Date(2026, 1, 3, 0, 0, 30, 0, time.UTC),
		MinDuration: 5 * time.Minute, MaxDuration: 2 * time.Hour, Limit: reviewListLimit + 1}
	if got != want {
		t.Errorf("List filter = %+v\nwant %+v", got, want)
	}
	// The form shows the search again.
	if !strings.Contains(res.body, `value="secret   word"`) || !strings.Contains(res.body, `<option value="complete" selected>`) {
		t.Errorf("list page does not show the search back")
	}

	// A filter that means nothing is refused with a message, and the index
	// is not asked.
	calls := len(rv.rec.filters)
	for _, bad := range []string{"min=abc", "max=-5m", "since=yesterday", "status=deleted", "since=2026-01-02T00:00&until=2026-01-01T00:00"} {
		res := rv.get(c, "https://gate.test/review/?"+bad)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(res.body, `id="review-error"`) {
			t.Errorf("?%s = %d, want 400 with the error shown", bad, res.StatusCode)
		}
	}
	if n := len(rv.rec.filters); n != calls {
		t.Errorf("refused filters reached the index %d times", n-calls)
	}
}

func TestReviewRefusesNonReviewers(t *testing.T) {
	rv := newRVEnv(t)
	c, res := rv.reviewer("eve@example.com", "eng")
	if res.StatusCode != http.StatusForbidden || !strings.Contains(res.body, "Access denied") || !strings.Contains(res.body, "members of the group security") {
		t.Fatalf("non-reviewer at /review/ = %d, want the denied page naming whom to ask\n%.500s", res.StatusCode, res.body)
	}
	for _, path := range []string{"/review/s/rec-old", "/review/s/rec-old/cast", "/review/s/rec-live/live"} {
		res := rv.get(c, "https://gate.test"+path)
		if res.StatusCode != http.StatusForbidden || strings.Contains(res.body, "hello from the old one") {
			t.Errorf("non-reviewer GET %s = %d, want 403 without content", path, res.StatusCode)
		}
	}
	csrf := csrfOf(t, res.body)
	if res := rv.terminate(c, "rec-live", csrf, "/review/", "https://gate.test"); res.StatusCode != http.StatusForbidden {
		t.Errorf("non-reviewer terminate = %d, want 403", res.StatusCode)
	}
	if calls := rv.term.list(); len(calls) != 0 {
		t.Errorf("a non-reviewer terminated %v", calls)
	}
	denials := rv.audit.inner.find("review.access", audit.Deny)
	if len(denials) != 5 {
		t.Fatalf("review.access denials audited = %d, want 5 (list, player, cast, live, terminate)", len(denials))
	}
	if d := denials[0]; d.Actor != "eve@example.com" || d.Resource != "review" || d.Details["request_id"] == "" {
		t.Errorf("denial audit = %+v", d)
	}
	if n := len(rv.audit.inner.find("recording.play", "")); n != 0 {
		t.Errorf("refused requests audited %d playbacks", n)
	}
	rv.rec.mu.Lock()
	casted := rv.rec.casted
	rv.rec.mu.Unlock()
	if casted != 0 {
		t.Errorf("Cast called %d times for a non-reviewer", casted)
	}

	// Without a session, the console starts a sign-in that comes back.
	res = rv.get(rv.client(), "https://gate.test/review/s/rec-old")
	if want := "/auth/login?rd=" + url.QueryEscape("/review/s/rec-old"); res.StatusCode != http.StatusFound || res.Header.Get("Location") != want {
		t.Errorf("no session = %d to %q, want %q", res.StatusCode, res.Header.Get("Location"), want)
	}
}

func TestReviewConsoleOffWithoutRecordings(t *testing.T) {
	e := newPTEnv(t)
	e.cfg.Reviewers.Groups = []string{"security"}
	c := e.client()
	e.login(c, newPTKey(), "https://gate.test/auth/login", "rita@example.com", "security")
	for _, path := range []string{"/review/", "/review/s/rec-old/cast"} {
		if res := e.get(c, "https://gate.test"+path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s with no recorder = %d, want 404", path, res.StatusCode)
		}
	}
}

func TestReviewCastIsAuditedAndNotCached(t *testing.T) {
	rv := newRVEnv(t)
	c, _ := rv.reviewer("rita@example.com", "security")
	res := rv.get(c, "https://gate.test/review/s/rec-old/cast")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("cast = %d %.300s", res.StatusCode, res.body)
	}
	if got := res.Header.Get("Content-Type"); got != "application/x-asciicast" {
		t.Errorf("cast Content-Type = %q, want application/x-asciicast", got)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("cast Cache-Control = %q, want no-store", got)
	}
	if !strings.HasPrefix(res.body, `{"version":2`) || !strings.Contains(res.body, "hello from the old one") {
		t.Errorf("cast body = %q", res.body)
	}
	plays := rv.audit.inner.find("recording.play", audit.Allow)
	if len(plays) != 1 {
		t.Fatalf("recording.play events = %d, want 1", len(plays))
	}
	if p := plays[0]; p.Actor != "rita@example.com" || p.Resource != "recording:rec-old" || p.Action != "replay" ||
		p.Session != "conn-old" || p.Details["user"] != "ann@example.com" || p.Details["target"] != "prod-db" {
		t.Errorf("recording.play = %+v", p)
	}
	for path, code := range map[string]int{"/review/s/nope/cast": 404, "/review/s/a%20b/cast": 404, "/review/s/" + strings.Repeat("x", 200) + "/cast": 404} {
		if res := rv.get(c, "https://gate.test"+path); res.StatusCode != code {
			t.Errorf("GET %s = %d, want %d", path, res.StatusCode, code)
		}
	}

	// A playback the audit log cannot take does not happen.
	rv.audit.mu.Lock()
	rv.audit.fail["recording.play"] = true
	rv.audit.mu.Unlock()
	res = rv.get(c, "https://gate.test/review/s/rec-old/cast")
	if res.StatusCode != http.StatusServiceUnavailable || strings.Contains(res.body, "hello from the old one") {
		t.Errorf("cast with a failing audit log = %d, want 503 without content", res.StatusCode)
	}
}

func TestReviewPlayerPage(t *testing.T) {
	rv := newRVEnv(t)
	c, _ := rv.reviewer("rita@example.com", "security")
	res := rv.get(c, "https://gate.test/review/s/rec-old")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("player page = %d", res.StatusCode)
	}
	// The player's WebAssembly needs wasm-unsafe-eval; nothing else is
	// loosened.
	if csp := res.Header.Get("Content-Security-Policy"); csp != playerCSP || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("player page CSP = %q, want %q", csp, playerCSP)
	}
	for _, w := range []string{`data-cast="/review/s/rec-old/cast"`, `data-cols="100"`, `data-rows="30"`, `id="speed"`,
		`data-t="65.000"`, "1:05", "cat /etc/shadow", `data-t="89.000"`, "ann@example.com on prod-db as ubuntu"} {
		if !strings.Contains(res.body, w) {
			t.Errorf("player page lacks %q", w)
		}
	}
	if strings.Contains(res.body, "data-live=") || strings.Contains(res.body, `id="terminate"`) {
		t.Errorf("player page of an ended session offers live or terminate")
	}
	views := rv.audit.inner.find("recording.view", audit.Allow)
	if len(views) != 1 || views[0].Actor != "rita@example.com" || views[0].Resource != "recording:rec-old" {
		t.Errorf("recording.view events = %+v, want one for rita on rec-old", views)
	}

	// Watching a live session: the eventsource source and Terminate.
	res = rv.get(c, "https://gate.test/review/s/rec-live?live=1")
	for _, w := range []string{`data-live="/review/s/rec-live/live"`, `id="terminate"`, `action="/review/s/rec-live/terminate"`} {
		if !strings.Contains(res.body, w) {
			t.Errorf("live player page lacks %q", w)
		}
	}
	if res := rv.get(c, "https://gate.test/review/s/nope"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown recording = %d, want 404", res.StatusCode)
	}
}

func TestReviewStaleAssertionStepsUp(t *testing.T) {
	rv := newRVEnv(t)
	c, res := rv.reviewer("rita@example.com", "security")
	csrf := csrfOf(t, res.body)
	rv.clock.Advance(reviewFreshness + time.Minute)
	res = rv.get(c, "https://gate.test/review/?q=x")
	if want := "/auth/stepup?rd=" + url.QueryEscape("/review/?q=x"); res.StatusCode != http.StatusFound || res.Header.Get("Location") != want {
		t.Fatalf("stale assertion = %d to %q, want %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	res = rv.terminate(c, "rec-live", csrf, "/review/s/rec-live", "https://gate.test")
	if want := "/auth/stepup?rd=" + url.QueryEscape("/review/s/rec-live"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
		t.Errorf("terminate with a stale assertion = %d to %q, want %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	if calls := rv.term.list(); len(calls) != 0 {
		t.Errorf("terminated with a stale assertion: %v", calls)
	}
	// The step-up comes back to the console.
	page := rv.follow(c, "https://gate.test"+res.Header.Get("Location"))
	back := rv.follow(c, ptAbs(page.Request.URL, rv.redirectOf(rv.ceremony(c, page, rv.key))))
	if back.StatusCode != http.StatusOK || back.Request.URL.Path != "/review/s/rec-live" {
		t.Errorf("after step-up: %d at %s, want the player page", back.StatusCode, back.Request.URL)
	}
}

func TestReviewTerminate(t *testing.T) {
	rv := newRVEnv(t)
	c, res := rv.reviewer("rita@example.com", "security")
	csrf := csrfOf(t, res.body)

	// Refused without the CSRF token, with a wrong one, or from elsewhere.
	for name, r := range map[string]ptResp{
		"no token":     rv.terminate(c, "rec-live", "", "/review/", "https://gate.test"),
		"wrong token":  rv.terminate(c, "rec-live", csrf+"x", "/review/", "https://gate.test"),
		"cross origin": rv.terminate(c, "rec-live", csrf, "/review/", "https://evil.example"),
	} {
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("terminate with %s = %d, want 403", name, r.StatusCode)
		}
	}
	if calls := rv.term.list(); len(calls) != 0 {
		t.Fatalf("refused requests terminated %v", calls)
	}

	res = rv.terminate(c, "rec-live", csrf, "/review/s/rec-live", "https://gate.test")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/review/s/rec-live" {
		t.Errorf("terminate = %d to %q, want 303 back to the player", res.StatusCode, res.Header.Get("Location"))
	}
	if calls := rv.term.list(); len(calls) != 1 || calls[0] != [2]string{"conn-live", "rita@example.com"} {
		t.Errorf("Terminate calls = %v, want one for conn-live by rita@example.com", calls)
	}
	ev := rv.audit.inner.find("recording.terminate", audit.Allow)
	if len(ev) != 1 || ev[0].Actor != "rita@example.com" || ev[0].Resource != "recording:rec-live" || ev[0].Session != "conn-live" {
		t.Errorf("recording.terminate events = %+v", ev)
	}

	// The return URL stays in the console.
	for _, rd := range []string{"https://evil.example/", "//evil.example", "/auth/logout", "/review/../keys/add"} {
		if res := rv.terminate(c, "rec-live", csrf, rd, "https://gate.test"); res.Header.Get("Location") != "/review/" {
			t.Errorf("terminate with rd %q went to %q, want /review/", rd, res.Header.Get("Location"))
		}
	}
	// An ended session cannot be terminated; an unknown one is not found.
	if res := rv.terminate(c, "rec-old", csrf, "/review/", "https://gate.test"); res.StatusCode != http.StatusConflict {
		t.Errorf("terminate an ended session = %d, want 409", res.StatusCode)
	}
	if res := rv.terminate(c, "nope", csrf, "/review/", "https://gate.test"); res.StatusCode != http.StatusNotFound {
		t.Errorf("terminate an unknown session = %d, want 404", res.StatusCode)
	}
}

func TestReviewRowDuration(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	now := start.Add(10*time.Minute + 400*time.Millisecond)
	for _, tt := range []struct {
		m    recording.Meta
		want string
	}{
		{recording.Meta{Status: recording.StatusLive, Start: start}, "10m0s"},
		{recording.Meta{Status: recording.StatusComplete, Start: start, End: start.Add(95 * time.Second)}, "1m35s"},
		{recording.Meta{Status: recording.StatusIncomplete, Start: start, End: start.Add(time.Second)}, "1s"},
		{recording.Meta{Status: recording.StatusIncomplete, Start: start}, "unknown"},
		{recording.Meta{Status: recording.StatusComplete, Start: start, End: start.Add(-time.Hour)}, "0s"},
	} {
		if got := reviewRow(tt.m, now).Duration; got != tt.want {
			t.Errorf("reviewRow(%s, start %v, end %v).Duration = %q, want %q", tt.m.Status, tt.m.Start, tt.m.End, got, tt.want)
		}
	}
}
