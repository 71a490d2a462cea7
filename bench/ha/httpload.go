package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// httpClient is one keep-alive HTTPS connection to one replica (the
// load balancer's choice, round robin by connection).
func httpClient(pool *x509.CertPool, port int) *http.Client {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12},
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// wantBody is the upstream's answer for the person behind cookie i.
func wantBody(email string) string { return upstreamBody + email }

// getOnce makes one request with cookie and checks the upstream's answer.
func getOnce(c *http.Client, port int, cookie, email string) (kind, msg string) {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://localhost:%d/bench", port), nil)
	req.Header.Set("Cookie", cookie)
	res, err := c.Do(req)
	if err != nil {
		return "transport error", err.Error()
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	switch {
	case err != nil:
		return "body read error", err.Error()
	case res.StatusCode != http.StatusOK:
		return fmt.Sprintf("status %d", res.StatusCode), fmt.Sprintf("GET /bench: %s, Location %q, body %.200q", res.Status, res.Header.Get("Location"), body)
	case string(body) != wantBody(email):
		return "wrong body", fmt.Sprintf("got %.200q, want %q", body, wantBody(email))
	}
	return "", ""
}

// cookieAt pairs a Cookie header with the person it belongs to.
type cookieAt struct{ cookie, email string }

// httpHot runs conc clients for d, each on its own keep-alive connection
// to replica i%2 with its own session, as fast as each gets answers.
func httpHot(e *env, pool *x509.CertPool, cookies []cookieAt, d time.Duration) *tally {
	t := newTally()
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for i, ck := range cookies {
		rep := i % 2
		port := e.replicas[rep].httpsPort
		c := httpClient(pool, port)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.CloseIdleConnections()
			for time.Now().Before(stop) {
				start := time.Now()
				if kind, msg := getOnce(c, port, ck.cookie, ck.email); kind != "" {
					t.fail(rep, "http "+kind, msg)
					continue
				}
				t.ok(rep, time.Since(start), 0)
			}
		}()
	}
	wg.Wait()
	return t
}

// httpCold sends one request per fresh session (never seen by either
// replica's cookie cache), conc at a time over keep-alive connections:
// the cost of a request that misses the cache, i.e. with the cache off.
// ready runs once the connections are open, before the first request.
func httpCold(e *env, pool *x509.CertPool, cookies []cookieAt, conc int, ready func()) *tally {
	t := newTally()
	var next atomic.Int64
	var wg sync.WaitGroup
	clients := make([]*http.Client, conc)
	for w := range clients {
		port := e.replicas[w%2].httpsPort
		clients[w] = httpClient(pool, port)
		// Open the connection first (a redirect, no session to look up),
		// so neither the handshake nor its Redis calls are counted.
		_, _ = getOnce(clients[w], port, "", "")
	}
	ready()
	for w, c := range clients {
		rep := w % 2
		port := e.replicas[rep].httpsPort
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.CloseIdleConnections()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(cookies) {
					return
				}
				start := time.Now()
				if kind, msg := getOnce(c, port, cookies[i].cookie, cookies[i].email); kind != "" {
					t.fail(rep, "http "+kind, msg)
					continue
				}
				t.ok(rep, time.Since(start), 0)
			}
		}()
	}
	wg.Wait()
	return t
}

// checkGate requires that each replica refuses a request without a
// session (a redirect to the portal) and answers one with a session.
func checkGate(e *env, pool *x509.CertPool, ck cookieAt) error {
	for _, r := range e.replicas {
		c := httpClient(pool, r.httpsPort)
		if kind, msg := getOnce(c, r.httpsPort, "", ""); !strings.HasPrefix(kind, "status 30") {
			return fmt.Errorf("replica %s without a session: %s %s, want a redirect to the portal", r.name, kind, msg)
		}
		if kind, msg := getOnce(c, r.httpsPort, ck.cookie, ck.email); kind != "" {
			return fmt.Errorf("replica %s with a session: %s: %s", r.name, kind, msg)
		}
		c.CloseIdleConnections()
	}
	return nil
}
