package proxy

import (
	"errors"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// errUnrequestedSwitch is the hop's answer to a 101 that does not switch to
// the WebSocket the client asked for.
var errUnrequestedSwitch = errors.New("upstream switched protocols without a WebSocket upgrade")

// isWebSocketUpgrade reports whether r asks for a WebSocket and nothing
// else: an HTTP/1.1 GET with "Connection: upgrade" and exactly one Upgrade
// token, "websocket" (any case). It is the only upgrade the hop passes on;
// after a 101 the bytes are tunnelled past per-request policy, so h2c or
// any other protocol would open a way around the gate.
func isWebSocketUpgrade(r *http.Request) bool {
	if r.Method != http.MethodGet || r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return false
	}
	up := r.Header.Values("Upgrade")
	if len(up) != 1 || !strings.EqualFold(strings.TrimSpace(up[0]), "websocket") {
		return false
	}
	return httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade")
}

// needsUpgradeStrip reports whether r carries any header that asks for a
// protocol switch or names hop-by-hop headers.
func needsUpgradeStrip(h http.Header) bool {
	return len(h["Upgrade"]) > 0 || len(h["Connection"]) > 0 || len(h["Http2-Settings"]) > 0
}

// withoutUpgrade returns a copy of r whose header has no Upgrade,
// HTTP2-Settings or Connection, nor any header Connection names, so the
// upstream sees a plain request (RFC 9110 section 7.6.1: what Connection
// names is for this hop only).
func withoutUpgrade(r *http.Request) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	h := r.Header.Clone()
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				h.Del(tok)
			}
		}
	}
	h.Del("Connection")
	h.Del("Upgrade")
	h.Del("Http2-Settings")
	r2.Header = h
	return r2
}

// switchAllowed reports whether a 101 from the upstream may be tunnelled:
// only when the request the hop sent was a WebSocket upgrade and the
// response switches to exactly that.
func switchAllowed(res *http.Response) bool {
	if res.Request == nil || !isWebSocketUpgrade(res.Request) {
		return false
	}
	up := res.Header.Values("Upgrade")
	return len(up) == 1 && strings.EqualFold(strings.TrimSpace(up[0]), "websocket")
}
