package identity

import (
	"net/url"
	"strings"
)

// maxReturnLen bounds a return URL.
const maxReturnLen = 2048

// SafeReturn checks a return URL before the portal redirects to it. It
// accepts a relative path that starts with exactly one "/" (not "//" or
// "/\"), and an absolute https URL whose host allowedHost accepts (the
// portal's and the routes' hosts; allowedHost gets the URL's host in lower
// case, with its port if the URL has one). It refuses other schemes,
// userinfo, backslashes, anything but printable ASCII (so no control
// characters or spaces) and anything longer than 2048 bytes. It returns the
// URL to use and whether it is safe; when it is not safe the URL is "".
// A nil allowedHost accepts no absolute URL.
func SafeReturn(raw string, allowedHost func(host string) bool) (string, bool) {
	if raw == "" || len(raw) > maxReturnLen {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= 0x20 || c >= 0x7f || c == '\\' {
			return "", false
		}
	}
	if raw[0] == '/' {
		if len(raw) > 1 && raw[1] == '/' {
			return "", false
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
			return "", false
		}
		return raw, true
	}
	if allowedHost == nil {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || len(raw) < len("https://x") || !strings.EqualFold(raw[:len("https://")], "https://") {
		return "", false
	}
	if u.User != nil || u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return "", false
	}
	if p := u.Port(); p != "" && !allDigits(p) {
		return "", false
	}
	if !allowedHost(strings.ToLower(u.Host)) {
		return "", false
	}
	return raw, true
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
