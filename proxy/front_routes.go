package proxy

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// Metric labels for requests that reach no configured host.
const (
	labelRefused = "-"         // CONNECT, absolute-URI
	labelUnknown = "(unknown)" // Host names no route
)

// frontRoutes is one immutable snapshot of host routing. Reload builds a new
// one and swaps it whole, so a request sees either the old or the new
// routing, never a mix.
type frontRoutes struct {
	cfg        *config.Config
	publicHost string
	// redirectPort is ":PORT" when public_url names a port other than 443,
	// for redirects from plain HTTP; "" otherwise.
	redirectPort string
	portal       http.Handler
	routeHosts   map[string]bool         // every configured route host
	apps         map[string]http.Handler // route host -> handler
	// encodedSlashes holds the route hosts with allow_encoded_slashes.
	encodedSlashes map[string]bool
	// wsOrigins holds each route host's websocket_origins, lower case.
	wsOrigins map[string][]string
}

// frontPublicHost returns the lowercased host of public_url.
func frontPublicHost(cfg *config.Config) (string, error) {
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("public_url %q: not a URL with a host", cfg.PublicURL)
	}
	return strings.ToLower(u.Hostname()), nil
}

func newFrontRoutes(cfg *config.Config, portal http.Handler, apps map[string]http.Handler) (*frontRoutes, error) {
	pub, err := frontPublicHost(cfg)
	if err != nil {
		return nil, err
	}
	rt := &frontRoutes{
		cfg:            cfg,
		publicHost:     pub,
		routeHosts:     map[string]bool{},
		apps:           map[string]http.Handler{},
		encodedSlashes: map[string]bool{},
		wsOrigins:      map[string][]string{},
	}
	if u, _ := url.Parse(cfg.PublicURL); u.Port() != "" && u.Port() != "443" {
		rt.redirectPort = ":" + u.Port()
	}
	if portal == nil {
		portal = placeholderPortal()
	}
	rt.portal = SecurityHeaders(portal)
	for _, r := range cfg.Routes {
		h := strings.ToLower(r.Host)
		rt.routeHosts[h] = true
		rt.encodedSlashes[h] = r.AllowEncodedSlashes
		for _, o := range r.WebSocketOrigins {
			rt.wsOrigins[h] = append(rt.wsOrigins[h], strings.ToLower(o))
		}
	}
	for host, h := range apps {
		if !rt.routeHosts[host] {
			return nil, fmt.Errorf("apps: %q is not a configured route host", host)
		}
		if h == nil {
			return nil, fmt.Errorf("apps: nil handler for %q", host)
		}
		rt.apps[host] = h
	}
	return rt, nil
}

// hosts returns every host name the front answers for, public host first.
func (rt *frontRoutes) hosts() []string {
	hs := make([]string, 0, 1+len(rt.routeHosts))
	for h := range rt.routeHosts {
		hs = append(hs, h)
	}
	sort.Strings(hs)
	return append([]string{rt.publicHost}, hs...)
}

// known reports whether host is the public host or a route host.
func (rt *frontRoutes) known(host string) bool {
	return host == rt.publicHost || rt.routeHosts[host]
}

// routeUnavailable answers on a configured route whose application handler
// is not wired (yet): an error from Gatehouse, never a hop upstream.
var routeUnavailable = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	frontError(w, http.StatusServiceUnavailable, "route not available")
})

// lookup returns the handler and metric label for host, or nil.
func (rt *frontRoutes) lookup(host string) (http.Handler, string) {
	if host == rt.publicHost {
		return rt.portal, host
	}
	if h, ok := rt.apps[host]; ok {
		return h, host
	}
	if rt.routeHosts[host] {
		return routeUnavailable, host
	}
	return nil, labelUnknown
}

// canonicalHost lowercases a Host header or server name and strips its port.
func canonicalHost(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(h)
}

// ServeHTTP routes one HTTPS request by its Host header. Requests that name
// no configured host, use an absolute-URI or CONNECT, or whose Host differs
// from the TLS server name are answered by Gatehouse and never proxied.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	hw := newHSTSWriter(w, r)
	hw.body = withBodyDeadline(w, r, start, f.bodyGrace)
	label := f.dispatch(hw, r)
	if hw.code == 0 && !hw.hijacked {
		hw.WriteHeader(http.StatusOK)
	}
	if !hw.hijacked {
		// The server flushes the rest of the response after this returns.
		hw.extendWrite()
	}
	if hw.body != nil {
		hw.body.done.Store(true)
		if hw.http1 && !hw.hijacked && hw.body.unread() {
			// The response said Connection: close, yet Go's server would
			// still read up to 256 KiB of the body before closing, as
			// slowly as the client sends it. An expired deadline ends
			// that read at once.
			_ = hw.rc.SetReadDeadline(time.Now())
		}
	}
	f.metrics.observe(label, hw.code, time.Since(start))
}

func (f *Front) dispatch(w http.ResponseWriter, r *http.Request) string {
	if r.Method == http.MethodConnect {
		frontError(w, http.StatusMethodNotAllowed, "CONNECT is not allowed")
		return labelRefused
	}
	if !strings.HasPrefix(r.RequestURI, "/") {
		frontError(w, http.StatusBadRequest, "the request target must be a path")
		return labelRefused
	}
	host := canonicalHost(r.Host)
	rt := f.routes.Load()
	h, label := rt.lookup(host)
	if h == nil {
		frontError(w, http.StatusMisdirectedRequest, "unknown host")
		return label
	}
	// A connection is bound to the host it was opened for: a request for
	// another route on it (domain fronting, or HTTP/2 coalescing) is sent
	// back to open its own connection, as RFC 9110 section 15.5.20 allows.
	if r.TLS == nil || canonicalHost(r.TLS.ServerName) != host {
		frontError(w, http.StatusMisdirectedRequest, "misdirected request")
		return label
	}
	if !f.canonicalise(w, r, host, rt.encodedSlashes[host]) {
		return label
	}
	if rt.routeHosts[host] && isWebSocketUpgrade(r) {
		// Cross-site WebSocket hijacking: a page on another origin (a
		// sibling app host is same-site, so SameSite cookies do not stop
		// it) must not open a socket as the person.
		if !rt.originAllowed(host, r.Header.Get("Origin")) {
			f.refuse(r, host, "websocket origin not allowed: "+strconv.Quote(truncate(r.Header.Get("Origin"), 128)))
			frontError(w, http.StatusForbidden, "WebSocket origin not allowed")
			return label
		}
		r = r.WithContext(withWSGuard(r.Context(), f.ws))
	}
	h.ServeHTTP(w, r)
	return label
}

// truncate shortens s to at most n bytes, for logs and audit events.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
