package proxy

import (
	"net/http"
	"sync"
)

// stripClientHeaders removes from h every header a client could use to
// claim an identity or a forwarding path: X-Gatehouse-*, X-Forwarded-*,
// Forwarded, X-Real-Ip and X-Client-Ip. Names are compared ignoring case
// and treating "_" as "-", because many application servers (CGI, WSGI,
// PHP, Rack) map both to the same variable.
func stripClientHeaders(h http.Header) {
	for k := range h {
		if spoofable(k) {
			delete(h, k)
		}
	}
}

func spoofable(k string) bool {
	return hasHeaderPrefix(k, "x-gatehouse-") || hasHeaderPrefix(k, "x-forwarded-") ||
		headerNameEqual(k, "forwarded") || headerNameEqual(k, "x-real-ip") || headerNameEqual(k, "x-client-ip")
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
