package config

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// hop validates a route's keys that shape the hop to its upstream:
// allow_encoded_slashes, websocket_origins, strip_headers and
// identity_headers.
func (v *validator) hop(p string, r Route) {
	if r.AllowEncodedSlashes && len(r.Paths) > 0 {
		// With %2F let through, "/a%2Fb" and "/a/b" may name the same
		// resource upstream while the rules see different paths.
		v.addf(p+".paths", "path rules cannot be used with allow_encoded_slashes: true")
	}
	for i, o := range r.WebSocketOrigins {
		if !validOrigin(o) {
			v.addf(fmt.Sprintf("%s.websocket_origins[%d]", p, i), "must be an https origin (https://host[:port], no path)")
		}
	}
	for i, h := range r.StripHeaders {
		if !ValidHeaderName(h) {
			v.addf(fmt.Sprintf("%s.strip_headers[%d]", p, i), "%q is not a valid header name", h)
		}
	}
	keys := make([]string, 0, len(r.IdentityHeaders))
	for k := range r.IdentityHeaders {
		keys = append(keys, k)
	}
	sort.Strings(keys) // problems in a stable order
	seen := map[string]string{}
	for _, k := range keys {
		kp := p + ".identity_headers"
		norm := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		switch {
		case !ValidHeaderName(k):
			v.addf(kp, "%q is not a valid header name", k)
		case seen[norm] != "":
			v.addf(kp, "%q and %q name the same header", seen[norm], k)
		case strings.HasPrefix(norm, "x-gatehouse-"):
			v.addf(kp, "%q: X-Gatehouse-* headers are set by Gatehouse itself", k)
		case !slices.Contains(IdentityFields(), r.IdentityHeaders[k]):
			v.addf(kp, "%s: %q must be one of %s", k, r.IdentityHeaders[k], strings.Join(IdentityFields(), ", "))
		}
		seen[norm] = k
	}
}

// ValidHeaderName reports whether s is an HTTP field name (an RFC 9110
// token).
func ValidHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validOrigin reports whether o is a serialised https origin as a browser
// sends it in the Origin header: scheme and host (lower case) and an
// optional port, nothing else.
func validOrigin(o string) bool {
	u, err := url.Parse(o)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	return u.String() == o && strings.ToLower(o) == o
}
