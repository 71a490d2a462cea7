package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authz"
)

// FrontAudit receives the front door's audit events (*audit.Log).
type FrontAudit interface {
	Log(ctx context.Context, ev audit.Event) error
}

// canonicalise replaces r's path by its one canonical form
// (authz.CanonicalPath), so that the gate judges and the hop forwards the
// same bytes. On a route with allow_encoded_slashes, "%2F" is kept and
// every piece between slashes is canonicalised alone. A path that has no
// safe canonical form is refused with 400 and an audit event; it reports
// whether r may go on.
func (f *Front) canonicalise(w http.ResponseWriter, r *http.Request, host string, encodedSlashes bool) bool {
	raw := r.URL.EscapedPath()
	var canon string
	var err error
	if encodedSlashes {
		canon, err = canonicalKeepingSlashes(raw)
	} else {
		canon, err = authz.CanonicalPath(raw)
	}
	var decoded string
	if err == nil {
		// canon never holds "%25", so decoding it once is exact.
		decoded, err = url.PathUnescape(canon)
	}
	if err != nil {
		f.refuse(r, host, "path cannot be canonicalised: "+strings.TrimPrefix(err.Error(), authz.ErrPathNotCanonical.Error()+": "))
		frontError(w, http.StatusBadRequest, "bad request path")
		return false
	}
	r.URL.Path = decoded
	r.URL.RawPath = canon
	r.RequestURI = r.URL.RequestURI()
	return true
}

// canonicalKeepingSlashes canonicalises each "%2F"-separated piece of each
// segment of raw and joins them with "%2F" again. An empty piece (a
// leading, trailing or doubled "%2F") is refused: upstreams disagree on
// what it means.
func canonicalKeepingSlashes(raw string) (string, error) {
	if raw == "" || raw[0] != '/' || len(raw) > authz.MaxPathLen {
		return authz.CanonicalPath(raw) // the same refusal as without the opt-out
	}
	segs := strings.Split(raw[1:], "/")
	out := make([]string, 0, len(segs))
	for _, seg := range segs {
		if seg == "" {
			continue
		}
		pieces := splitEncodedSlash(seg)
		for i, p := range pieces {
			if p == "" && len(pieces) > 1 {
				return "", fmt.Errorf("%w: empty segment around an encoded slash", authz.ErrPathNotCanonical)
			}
			c, err := authz.CanonicalPath("/" + p)
			if err != nil {
				return "", err
			}
			pieces[i] = c[1:]
		}
		out = append(out, strings.Join(pieces, "%2F"))
	}
	canon := "/" + strings.Join(out, "/")
	if strings.HasSuffix(raw, "/") && len(out) > 0 {
		canon += "/"
	}
	if len(canon) > authz.MaxPathLen {
		return "", fmt.Errorf("%w: too long", authz.ErrPathNotCanonical)
	}
	return canon, nil
}

// splitEncodedSlash splits seg at every "%2F" or "%2f".
func splitEncodedSlash(seg string) []string {
	var out []string
	start := 0
	for i := 0; i+2 < len(seg); i++ {
		if seg[i] == '%' && seg[i+1] == '2' && (seg[i+2] == 'F' || seg[i+2] == 'f') {
			out = append(out, seg[start:i])
			start = i + 3
			i += 2
		}
	}
	return append(out, seg[start:])
}

// refuse records a request the front refused before any handler ran. The
// request's path goes in quoted and truncated: it is attacker-chosen.
func (f *Front) refuse(r *http.Request, host, reason string) {
	f.logger.InfoContext(r.Context(), "Refused request.", "host", host, "reason", reason, "source", r.RemoteAddr)
	if f.audit == nil {
		return
	}
	ev := audit.Event{Type: "http.refused", Resource: "host:" + host, Action: r.Method + " " + strconv.Quote(truncate(r.RequestURI, 256)),
		Decision: audit.Deny, Reason: reason, Source: r.RemoteAddr}
	if err := f.audit.Log(r.Context(), ev); err != nil {
		f.logger.ErrorContext(r.Context(), "Audit log failed.", "type", ev.Type, "error", err)
	}
}
