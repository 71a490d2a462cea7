package identity

import (
	"net/url"
	"strings"
)

// maxReturnLen bounds a return URL.
const maxReturnLen = 2048

// SafeReturn checks a return URL before the portal redirects to it. It
// returns the URL unchanged and true when it is safe, or "" and false;
// the caller then sends the person to the portal's home (a bad return URL
// is never an error: it only loses the destination).
//
// A safe return URL is an origin the portal serves plus a local path:
//
//   - the origin is absent (a relative URL), or "https://" and a host that
//     allowedHost accepts (the portal's and the routes' hosts on the
//     portal's port; allowedHost gets the host in lower case, with the
//     port if the URL names one), with no userinfo;
//   - the path is empty or starts with exactly one "/" (not "//");
//   - no path segment is a dot segment, raw or encoded ("/.", "/%2e%2e"):
//     a browser resolves "https://GATE/.//evil.com" to the path
//     "//evil.com", which a redirect to the bare path turns into another
//     origin;
//   - the path is in the form net/url writes it back (EscapedPath returns
//     it unchanged), so that rebuilding it cannot turn "%2F" into "/";
//   - nothing but printable ASCII (no control characters or spaces), no
//     "\" raw or encoded (%5C), no encoded control characters, and at most
//     2048 bytes.
//
// A nil allowedHost accepts no absolute URL.
func SafeReturn(raw string, allowedHost func(host string) bool) (string, bool) {
	if raw == "" || len(raw) > maxReturnLen || !returnBytesOK(raw) {
		return "", false
	}
	rest := raw
	if !strings.HasPrefix(raw, "/") {
		const scheme = "https://"
		if allowedHost == nil || len(raw) < len(scheme) || !strings.EqualFold(raw[:len(scheme)], scheme) {
			return "", false
		}
		rest = raw[len(scheme):]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		authority := strings.ToLower(rest[:end])
		rest = rest[end:]
		if !authorityOK(authority) || !allowedHost(authority) {
			return "", false
		}
		if !strings.HasPrefix(rest, "/") && rest != "" && rest[0] != '?' && rest[0] != '#' {
			return "", false
		}
	}
	if strings.HasPrefix(rest, "//") || !noDotSegments(rest) {
		return "", false
	}
	// Last, the standard parser must read the same shape.
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" {
		return "", false
	}
	if u.Scheme == "" && u.Host != "" || u.Scheme != "" && !strings.EqualFold(u.Scheme, "https") {
		return "", false
	}
	// Callers rebuild the path with EscapedPath, which re-escapes a path
	// that is not in Go's canonical form from its decoded text: "/%2F\""
	// would come back as "//%22". Accept only a path that survives as is.
	if p, _, _ := strings.Cut(rest, "?"); u.EscapedPath() != strings.SplitN(p, "#", 2)[0] {
		return "", false
	}
	return raw, true
}

// returnBytesOK reports whether s holds only printable ASCII with no "\"
// and no percent-encoded backslash or control character.
func returnBytesOK(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
		if c == '%' && i+2 < len(s) {
			hi, lo := s[i+1]|0x20, s[i+2]|0x20 // ASCII lower case
			if hi == '0' || hi == '1' || hi == '5' && lo == 'c' || hi == '7' && lo == 'f' {
				return false
			}
		}
	}
	return true
}

// authorityOK reports whether a lower-cased authority is a plain host with
// an optional numeric port: no userinfo, no percent-escapes, not empty.
func authorityOK(a string) bool {
	if a == "" || strings.ContainsAny(a, "@%") {
		return false
	}
	host, port := a, ""
	if i := strings.LastIndexByte(a, ':'); i >= 0 && !strings.HasSuffix(a, "]") {
		host, port = a[:i], a[i+1:]
		if !allDigits(port) {
			return false
		}
	}
	return host != ""
}

// noDotSegments reports whether the path part of rest (up to "?" or "#")
// has no "." or ".." segment, plain or percent-encoded.
func noDotSegments(rest string) bool {
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	for seg := range strings.SplitSeq(rest, "/") {
		s := strings.ReplaceAll(strings.ToLower(seg), "%2e", ".")
		if s == "." || s == ".." {
			return false
		}
	}
	return true
}

// allDigits reports whether s is a non-empty run of ASCII digits.
func allDigits(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
