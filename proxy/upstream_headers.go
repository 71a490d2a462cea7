package proxy

import (
	"net/http"
	"strings"
	"sync"

	"github.com/gatehouse-dev/gatehouse/authz"
	"github.com/gatehouse-dev/gatehouse/config"
)

// spoofPrefixes and spoofNames are the request headers a client could use
// to claim an identity, a forwarding path or another URL, in the names
// that common upstreams, auth proxies and frameworks trust: Gatehouse's
// own, X-Forwarded-* and Forwarded, oauth2-proxy's X-Auth-Request-*,
// Grafana's and Gitea's X-Webauth-*, Authelia's Remote-*, Apache's
// X-Remote-*, IIS's X-Original-Url and X-Rewrite-Url, Azure EasyAuth, IAP,
// ALB, Cloudflare Access, Pomerium, mod_auth_openidc and Elasticsearch's
// run-as. They are compared in lower case with "_" read as "-", because
// many application servers (CGI, WSGI, PHP, Rack) map both to the same
// variable.
var (
	spoofPrefixes = []string{
		"x-gatehouse-", "x-forwarded-", "x-auth-request-", "x-webauth-", "remote-", "x-remote-",
		"x-authenticated-", "x-original-", "x-rewrite-", "x-ms-client-principal", "x-goog-authenticated-user-",
		"x-amzn-oidc-", "cf-access-", "x-pomerium-", "oidc-",
	}
	spoofNames = []string{
		"forwarded", "x-real-ip", "x-client-ip", "x-user", "x-email", "x-username", "es-security-runas-user",
	}
)

// stripClientHeaders removes from h every header in the spoofable
// families, and the names in extra (lower case, "-" for "_").
func stripClientHeaders(h http.Header, extra []string) {
	for k := range h {
		if spoofable(k, extra) {
			delete(h, k)
		}
	}
}

func spoofable(k string, extra []string) bool {
	for _, p := range spoofPrefixes {
		if hasHeaderPrefix(k, p) {
			return true
		}
	}
	for _, n := range spoofNames {
		if headerNameEqual(k, n) {
			return true
		}
	}
	for _, n := range extra {
		if headerNameEqual(k, n) {
			return true
		}
	}
	return false
}

// normHeaderName is a header name in the form spoofable compares: lower
// case, "_" as "-".
func normHeaderName(k string) string {
	return strings.ToLower(strings.ReplaceAll(k, "_", "-"))
}

// hasHeaderPrefix reports whether name starts with the lower-case prefix,
// ignoring ASCII case and treating "_" as "-".
func hasHeaderPrefix(name, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

func headerNameEqual(name, lower string) bool {
	return len(name) == len(lower) && hasHeaderPrefix(name, lower)
}

// identityHeader is one route identity_headers entry: a canonical header
// name and the identity field it carries.
type identityHeader struct {
	name, field string
}

// newIdentityHeaders resolves a route's identity_headers (validated by
// config) into a fixed order.
func newIdentityHeaders(m map[string]string) []identityHeader {
	out := make([]identityHeader, 0, len(m))
	for k, v := range m {
		out = append(out, identityHeader{name: http.CanonicalHeaderKey(k), field: v})
	}
	return out
}

// setIdentityHeaders fills the route's identity headers for who; groups is
// the X-Gatehouse-Groups value. It runs after stripClientHeaders, so a
// client's copy never survives next to Gatehouse's.
func setIdentityHeaders(h http.Header, hs []identityHeader, who authz.Subject, groups string) {
	for _, ih := range hs {
		v := who.Email
		switch ih.field {
		case config.IdentityGroups:
			v = groups
		case config.IdentityName:
			v, _, _ = strings.Cut(who.Email, "@")
		}
		h[ih.name] = []string{v}
	}
}

// bufferPool is an httputil.BufferPool of 32 KiB copy buffers, so that a
// proxied response does not allocate its own.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) >= copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
	}
}
