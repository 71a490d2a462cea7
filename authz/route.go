package authz

import (
	"path"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// DecideRoute decides whether s may send a request for urlPath to route r
// at time now.
//
// urlPath is the request's canonical path: callers pass what
// CanonicalPath returned for the request's escaped path, and forward that
// same string upstream, so the path judged is the path served. A path that
// CanonicalPath refuses is denied here too (fail closed), so a caller that
// passes the raw or decoded path by mistake never gains access through an
// odd spelling.
//
// Path rules match the decoded canonical path on a segment boundary
// ("/admin" covers "/admin" and "/admin/x", not "/administrator") and
// ignoring ASCII case, so a case-insensitive upstream cannot be reached
// around a rule ("/ADMIN" and "/%61dmin" are judged as "/admin"). The rule
// with the longest matching prefix replaces the route's allow list; when
// several rules share that prefix, every one of them must admit the subject
// and the shortest MFA age applies. A rule's zero mfa_max_age inherits the
// route's, whose zero inherits defaultMFA.
//
// A subject who is listed but whose WebAuthn assertion is missing or older
// than the applicable maximum age is denied with NeedMFA set.
func DecideRoute(s Subject, r *config.Route, defaultMFA time.Duration, urlPath string, now time.Time) Decision {
	if r == nil {
		return Decision{Reason: "no such route", Rule: "route:"}
	}
	ruleID := "route:" + r.Name
	where := "route " + r.Name
	routeMFA := pickMFA(r.MFAMaxAge.D(), defaultMFA)
	allows := []config.Allow{r.Allow}
	maxAge := routeMFA

	_, p, err := canonical(urlPath)
	if err != nil {
		return Decision{Rule: ruleID, Reason: where + ": request path refused (" + strings.TrimPrefix(err.Error(), ErrPathNotCanonical.Error()+": ") + ")"}
	}
	if len(r.Paths) > 0 {
		best := -1
		for i := range r.Paths {
			pre := normalisePath(r.Paths[i].Prefix)
			if !underPrefix(p, pre) {
				continue
			}
			switch {
			case best < 0 || len(pre) > best:
				best = len(pre)
				allows = append(allows[:0], r.Paths[i].Allow)
				maxAge = pickMFA(r.Paths[i].MFAMaxAge.D(), routeMFA)
				ruleID = "route:" + r.Name + ":path:" + pre
				where = "route " + r.Name + " path " + pre
			case len(pre) == best:
				allows = append(allows, r.Paths[i].Allow)
				maxAge = min(maxAge, pickMFA(r.Paths[i].MFAMaxAge.D(), routeMFA))
			}
		}
	}
	return decide(s, allows, maxAge, now, ruleID, where)
}

// decide applies allow lists (all must admit s) and the MFA age.
func decide(s Subject, allows []config.Allow, maxAge time.Duration, now time.Time, ruleID, where string) Decision {
	how := ""
	for _, a := range allows {
		k, entry := match(s, a)
		if k == matchNone {
			return Decision{Rule: ruleID, Reason: where + ": " + requirement(a)}
		}
		if how == "" {
			how = admitted(k, entry)
		}
	}
	if how == "" {
		// No allow list at all: unreachable through DecideRoute, but a deny.
		return Decision{Rule: ruleID, Reason: where + ": nobody is allowed (empty allow list)"}
	}
	if !mfaFresh(s.MFAAt, maxAge, now) {
		return Decision{Rule: ruleID, NeedMFA: true,
			Reason: where + ": security key confirmation required (last one older than " + maxAge.String() + ")"}
	}
	return Decision{Allow: true, Rule: ruleID, Reason: where + ": allowed by " + how}
}

// normalisePath resolves a configured rule prefix to a clean, absolute,
// slash-separated path. (Request paths go through CanonicalPath instead.)
func normalisePath(p string) string {
	if strings.IndexByte(p, '\\') >= 0 {
		p = strings.ReplaceAll(p, "\\", "/")
	}
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	return path.Clean(p)
}

// underPrefix reports whether the decoded canonical path p lies under the
// clean prefix pre on a segment boundary, ignoring ASCII case only (so a
// multi-byte character never folds into an ASCII one).
func underPrefix(p, pre string) bool {
	if pre == "/" {
		return true
	}
	if len(p) < len(pre) || !asciiEqualFold(p[:len(pre)], pre) {
		return false
	}
	return len(p) == len(pre) || p[len(pre)] == '/'
}

// asciiEqualFold reports whether a and b are equal ignoring ASCII case.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
