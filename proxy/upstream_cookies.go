package proxy

import (
	"net/http"
	"strings"
)

// CookiePrefix starts the name of every cookie Gatehouse sets, e.g.
// "__Host-gatehouse-session". The proxy never forwards a cookie whose name,
// after an optional "__Host-" or "__Secure-" prefix, starts with
// "gatehouse" (ignoring case), and never lets an upstream set one.
const CookiePrefix = "__Host-gatehouse"

// IsGatehouseCookie reports whether a cookie with this name belongs to
// Gatehouse and so must never reach or come from an upstream.
func IsGatehouseCookie(name string) bool {
	name = strings.TrimSpace(name)
	for _, p := range []string{"__Host-", "__Secure-"} {
		if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
			name = name[len(p):]
			break
		}
	}
	const own = "gatehouse"
	return len(name) >= len(own) && strings.EqualFold(name[:len(own)], own)
}

// stripGatehouseCookies removes Gatehouse's cookies from the Cookie
// header(s) of h, keeping the application's own cookies in order. It joins
// several Cookie headers into one.
func stripGatehouseCookies(h http.Header) {
	vals := h["Cookie"]
	if len(vals) == 0 {
		return
	}
	if len(vals) == 1 && !containsFold(vals[0], "gatehouse") {
		return
	}
	var b strings.Builder
	for _, v := range vals {
		for part := range strings.SplitSeq(v, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, _, _ := strings.Cut(part, "=")
			if IsGatehouseCookie(name) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
	}
	if b.Len() == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = []string{b.String()}
}

// stripGatehouseSetCookies removes Set-Cookie headers that would set a
// Gatehouse cookie and returns how many it removed.
func stripGatehouseSetCookies(h http.Header) int {
	vals := h["Set-Cookie"]
	kept := vals[:0]
	for _, v := range vals {
		name, _, _ := strings.Cut(v, "=")
		if !IsGatehouseCookie(name) {
			kept = append(kept, v)
		}
	}
	dropped := len(vals) - len(kept)
	switch {
	case dropped == 0:
	case len(kept) == 0:
		delete(h, "Set-Cookie")
	default:
		h["Set-Cookie"] = kept
	}
	return dropped
}

// containsFold reports whether s contains the lower-case ASCII word,
// ignoring case, without allocating.
func containsFold(s, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(word)], word) {
			return true
		}
	}
	return false
}
