package portal

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/web"
)

// reviewListLimit is how many sessions the list shows at most; a search
// that matches more says so, and the reviewer narrows it.
const reviewListLimit = 200

// Filter field limits: an email, a name, a search of a few words.
const (
	maxFilterField = 254
	maxFilterQuery = 200
)

// filterTimeLayouts are what a datetime-local input sends (with or without
// seconds); the console reads them as UTC, as it shows times.
var filterTimeLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05"}

// reviewStatuses are the status choices of the filter.
var reviewStatuses = []string{recording.StatusLive, recording.StatusComplete, recording.StatusIncomplete}

// reviewList lists and searches recorded sessions, newest first, live
// ones marked with Watch and Terminate.
func (p *Portal) reviewList(w http.ResponseWriter, r *http.Request) {
	here := "/review/"
	if r.URL.RawQuery != "" {
		here += "?" + r.URL.RawQuery
	}
	s := p.reviewer(w, r, here)
	if s == nil {
		return
	}
	form, f, problem := parseReviewFilter(r.URL.Query())
	body := web.ReviewList{Filter: form, Statuses: reviewStatuses, Limit: reviewListLimit, CanTerminate: p.review.Terminate != nil}
	if problem != "" {
		body.Filter.Error = problem
		p.render(w, r, http.StatusBadRequest, "review", p.page(s, "Recorded sessions", body))
		return
	}
	f.Limit = reviewListLimit + 1
	metas, err := p.review.Recordings.List(r.Context(), f)
	if err != nil {
		p.recordingFailed(w, r, err)
		return
	}
	sort.SliceStable(metas, func(i, j int) bool { return metas[i].Start.After(metas[j].Start) })
	if len(metas) > reviewListLimit {
		metas, body.More = metas[:reviewListLimit], true
	}
	now := p.now()
	for _, m := range metas {
		body.Rows = append(body.Rows, reviewRow(m, now))
	}
	p.render(w, r, http.StatusOK, "review", p.page(s, "Recorded sessions", body))
}

// parseReviewFilter reads the list's filter from a query. It returns the
// form as typed, the filter, and what was wrong ("" for nothing).
func parseReviewFilter(q url.Values) (web.ReviewFilter, recording.Filter, string) {
	get := func(k string, limit int) string {
		v := strings.TrimSpace(q.Get(k))
		if len(v) > limit {
			v = v[:limit]
		}
		return v
	}
	form := web.ReviewFilter{
		User: get("user", maxFilterField), Target: get("target", maxFilterField), Login: get("login", maxFilterField),
		Status: get("status", maxFilterField), Since: get("since", 32), Until: get("until", 32),
		MinDuration: get("min", 32), MaxDuration: get("max", 32), Query: get("q", maxFilterQuery),
	}
	f := recording.Filter{User: form.User, Target: form.Target, Login: form.Login, Query: form.Query}
	if form.Status != "" {
		ok := false
		for _, st := range reviewStatuses {
			ok = ok || st == form.Status
		}
		if !ok {
			return form, f, "Unknown status " + form.Status + "."
		}
		f.Status = form.Status
	}
	var bad string
	if f.Since, bad = filterTime(form.Since, "Started after"); bad != "" {
		return form, f, bad
	}
	if f.Until, bad = filterTime(form.Until, "Started before"); bad != "" {
		return form, f, bad
	}
	if f.MinDuration, bad = filterDuration(form.MinDuration, "Longer than"); bad != "" {
		return form, f, bad
	}
	if f.MaxDuration, bad = filterDuration(form.MaxDuration, "Shorter than"); bad != "" {
		return form, f, bad
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return form, f, "“Started before” must be later than “Started after”."
	}
	return form, f, ""
}

// filterTime parses a datetime-local value as UTC.
func filterTime(v, label string) (time.Time, string) {
	if v == "" {
		return time.Time{}, ""
	}
	for _, l := range filterTimeLayouts {
		if t, err := time.ParseInLocation(l, v, time.UTC); err == nil {
			return t, ""
		}
	}
	return time.Time{}, "“" + label + "” is not a date and time like 2026-01-02T15:04."
}

// filterDuration parses a Go duration (such as 90s, 5m or 1h30m).
func filterDuration(v, label string) (time.Duration, string) {
	if v == "" {
		return 0, ""
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, "“" + label + "” is not a duration like 90s, 5m or 1h30m."
	}
	return d, ""
}

// reviewRow describes m for the console at now.
func reviewRow(m recording.Meta, now time.Time) web.ReviewRow {
	live := m.Status == recording.StatusLive
	// A live session lasts until now; an incomplete one whose end was
	// never indexed (the writer died) has no known length.
	duration := "unknown"
	switch {
	case live:
		duration = max(now.Sub(m.Start), 0).Round(time.Second).String()
	case !m.End.IsZero():
		duration = max(m.End.Sub(m.Start), 0).Round(time.Second).String()
	}
	return web.ReviewRow{
		ID: m.ID, User: m.User, Target: m.Target, Login: m.Login, Source: m.Source, Kind: m.Kind, Command: m.Command,
		Status: m.Status, EndReason: m.EndReason, Start: m.Start, End: m.End,
		Duration: duration,
		Cols:     m.Width, Rows: m.Height, Bytes: m.Bytes, Live: live,
		PlayURL: recordingPath(m.ID, ""), WatchURL: recordingPath(m.ID, "?live=1"), TerminateURL: recordingPath(m.ID, "/terminate"), LockURL: recordingPath(m.ID, "/lock"),
	}
}
