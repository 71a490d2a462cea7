package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// upRawUpstream is a minimal keep-alive HTTP/1.1 server on loopback that
// answers every request with reply(n), n counting requests from 1. It
// records how many connections it accepted.
type upRawUpstream struct {
	ln    net.Listener
	conns atomic.Int64
	reqs  atomic.Int64
	wg    sync.WaitGroup
}

func upStartRaw(tb testing.TB, reply func(n int64, req *http.Request) string) *upRawUpstream {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &upRawUpstream{ln: ln}
	var mu sync.Mutex
	var open []net.Conn
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			u.conns.Add(1)
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					out := reply(u.reqs.Add(1), req)
					if out == "" {
						return // hang up without answering
					}
					out, hangUp := strings.CutSuffix(out, upHangUp)
					if _, err := io.WriteString(c, out); err != nil || hangUp {
						return
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		u.wg.Wait()
	})
	return u
}

func (u *upRawUpstream) url() *url.URL {
	return &url.URL{Scheme: "http", Host: u.ln.Addr().String()}
}

// upHangUp at the end of a reply makes upStartRaw close the connection
// after writing it.
const upHangUp = "\x00hang-up"

const upOK = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"

func upGet(t testing.TB, rt http.RoundTripper, method, rawURL string) (*http.Response, string, error) {
	t.Helper()
	req, _ := http.NewRequest(method, rawURL, nil)
	res, err := rt.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b), err
}

func BenchmarkUpstreamTransport(b *testing.B) {
	for _, tc := range []struct {
		name string
		std  bool
	}{{"fast", false}, {"std", true}} {
		b.Run(tc.name, func(b *testing.B) {
			up := upStartRaw(b, func(int64, *http.Request) string { return upOK })
			rt := newUpstreamTransport(up.url(), time.Minute)
			if tc.std {
				rt = rt.(*fastTransport).next
			}
			u := up.url().String() + "/x"
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
					res, err := rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			})
		})
	}
}

func TestFastTransport(t *testing.T) {
	tests := []struct {
		name      string
		reply     func(n int64, req *http.Request) string
		method    string
		requests  int
		wantBody  string
		wantCode  int
		wantConns int64 // connections the upstream saw
		wantErr   bool
	}{
		{"keep-alive reuse", func(int64, *http.Request) string { return upOK }, "GET", 20, "hello", 200, 1, false},
		{"HEAD reuses", func(int64, *http.Request) string { return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" }, "HEAD", 5, "", 200, 1, false},
		{"204 reuses", func(int64, *http.Request) string { return "HTTP/1.1 204 No Content\r\n\r\n" }, "GET", 5, "", 204, 1, false},
		{"chunked reuses", func(int64, *http.Request) string {
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
		}, "GET", 5, "hello", 200, 1, false},
		{"Connection: close is honoured", func(int64, *http.Request) string {
			return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"
		}, "GET", 3, "hello", 200, 3, false},
		{"HTTP/1.0 closes", func(int64, *http.Request) string { return "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello" }, "GET", 3, "hello", 200, 3, false},
		{"early hints skipped", func(int64, *http.Request) string {
			return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + upOK
		}, "GET", 3, "hello", 200, 1, false},
		{"extra bytes after the body are never a response", func(n int64, _ *http.Request) string {
			return upOK + "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
		}, "GET", 3, "hello", 200, 3, false},
		{"stale idle connection retried", func(n int64, _ *http.Request) string {
			if n%2 == 0 {
				return "" // hang up: as if the idle connection had timed out
			}
			return upOK
		}, "GET", 2, "hello", 200, 2, false},
		{"408 on a reused connection retried", func(n int64, _ *http.Request) string {
			if n == 2 {
				return "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
			}
			return upOK
		}, "GET", 2, "hello", 200, 2, false},
		{"fresh connection hang-up is an error", func(int64, *http.Request) string { return "" }, "GET", 1, "", 0, 1, true},
		{"101 without upgrade is an error", func(int64, *http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"
		}, "GET", 1, "", 0, 1, true},
		{"header too large", func(int64, *http.Request) string {
			return "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\nContent-Length: 0\r\n\r\n"
		}, "GET", 1, "", 0, 1, true},
		{"short body is an error", func(int64, *http.Request) string {
			return "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhello" + upHangUp
		}, "GET", 1, "", 0, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := upStartRaw(t, tt.reply)
			rt := newUpstreamTransport(up.url(), 5*time.Second)
			if _, ok := rt.(*fastTransport); !ok {
				t.Fatalf("http upstream got %T, want the fast transport", rt)
			}
			for i := 0; i < tt.requests; i++ {
				if tt.name == "extra bytes after the body are never a response" || tt.name == "408 on a reused connection retried" {
					time.Sleep(20 * time.Millisecond) // let stray bytes arrive
				}
				res, body, err := upGet(t, rt, tt.method, up.url().String()+"/p")
				if tt.wantErr {
					if err == nil {
						t.Fatalf("request %d: got %d %q, want an error", i, res.StatusCode, body)
					}
					continue
				}
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if res.StatusCode != tt.wantCode || body != tt.wantBody {
					t.Fatalf("request %d: got %d %q, want %d %q", i, res.StatusCode, body, tt.wantCode, tt.wantBody)
				}
			}
			if got := up.conns.Load(); got != tt.wantConns {
				t.Errorf("upstream saw %d connections, want %d", got, tt.wantConns)
			}
		})
	}
}

func TestFastTransportFallsBack(t *testing.T) {
	up := upStartRaw(t, func(_ int64, r *http.Request) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(r.Method)) + "\r\n\r\n" + r.Method
	})
	ft := newUpstreamTransport(up.url(), 5*time.Second).(*fastTransport)
	counting := &upCountingRT{next: ft.next}
	ft.next = counting
	base := up.url().String()
	tests := []struct {
		name     string
		req      func() *http.Request
		fallback bool
	}{
		{"GET", func() *http.Request { r, _ := http.NewRequest("GET", base+"/", nil); return r }, false},
		{"HEAD", func() *http.Request { r, _ := http.NewRequest("HEAD", base+"/", nil); return r }, false},
		{"POST with body", func() *http.Request { r, _ := http.NewRequest("POST", base+"/", strings.NewReader("x")); return r }, true},
		{"DELETE", func() *http.Request { r, _ := http.NewRequest("DELETE", base+"/", nil); return r }, true},
		{"upgrade", func() *http.Request {
			r, _ := http.NewRequest("GET", base+"/", nil)
			r.Header.Set("Upgrade", "websocket")
			r.Header.Set("Connection", "Upgrade")
			return r
		}, true},
		{"expect", func() *http.Request {
			r, _ := http.NewRequest("GET", base+"/", nil)
			r.Header.Set("Expect", "100-continue")
			return r
		}, true},
		{"close", func() *http.Request { r, _ := http.NewRequest("GET", base+"/", nil); r.Close = true; return r }, true},
		{"invalid header value", func() *http.Request {
			r, _ := http.NewRequest("GET", base+"/", nil)
			r.Header["X-Evil"] = []string{"a\r\nX-Injected: 1"}
			return r
		}, true},
		{"other host", func() *http.Request { r, _ := http.NewRequest("GET", "http://127.0.0.1:1/", nil); return r }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counting.n.Load()
			res, err := ft.RoundTrip(tt.req())
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			if got := counting.n.Load() > before; got != tt.fallback {
				t.Errorf("fell back = %v, want %v (err %v)", got, tt.fallback, err)
			}
		})
	}
	// Seven reached the upstream; the standard transport refused the
	// injected header, which never reached the wire.
	if up.reqs.Load() != 7 {
		t.Errorf("upstream saw %d requests, want 7", up.reqs.Load())
	}
}

type upCountingRT struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *upCountingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func TestFastTransportTimeoutsAndCancel(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	up := upStartRaw(t, func(int64, *http.Request) string {
		<-release
		return upOK
	})
	rt := newUpstreamTransport(up.url(), 200*time.Millisecond)
	start := time.Now()
	_, _, err := upGet(t, rt, "GET", up.url().String()+"/slow")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("slow upstream: err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %v", d)
	}

	rt = newUpstreamTransport(up.url(), time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", up.url().String()+"/cancel", nil)
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	if _, err := rt.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancel took %v", d)
	}
	once.Do(func() { close(release) })
}

func TestFastTransportConcurrent(t *testing.T) {
	up := upStartRaw(t, func(_ int64, r *http.Request) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(r.URL.Path)) + "\r\n\r\n" + r.URL.Path
	})
	rt := newUpstreamTransport(up.url(), 5*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				path := fmt.Sprintf("/g%d/r%d", g, i)
				_, body, err := upGet(t, rt, "GET", up.url().String()+path)
				if err != nil || body != path {
					errs <- fmt.Errorf("%s: got %q, %v", path, body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := up.conns.Load(); n > 16 {
		t.Errorf("%d connections for 16 concurrent clients", n)
	}
}

func TestFastTransportDefaultPort(t *testing.T) {
	u, _ := url.Parse("http://upstream.example.test")
	ft := newUpstreamTransport(u, time.Second).(*fastTransport)
	req, _ := http.NewRequest(http.MethodGet, "http://upstream.example.test/x", nil)
	if ft.addr != "upstream.example.test:80" || !ft.eligible(req) {
		t.Errorf("addr %q, eligible %v: want upstream.example.test:80 and the fast path", ft.addr, ft.eligible(req))
	}
	u, _ = url.Parse("https://upstream.example.test")
	if rt := newUpstreamTransport(u, time.Second); rt == nil {
		t.Fatal("nil transport")
	} else if _, ok := rt.(*http.Transport); !ok {
		t.Errorf("https upstream got %T, want *http.Transport", rt)
	}
}

func TestFastTransportReapsIdle(t *testing.T) {
	up := upStartRaw(t, func(int64, *http.Request) string { return upOK })
	ft := newUpstreamTransport(up.url(), time.Second).(*fastTransport)
	ft.idleTimeout = 50 * time.Millisecond
	if _, _, err := upGet(t, ft, "GET", up.url().String()+"/"); err != nil {
		t.Fatal(err)
	}
	idle := func() int {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		return len(ft.idle)
	}
	if idle() != 1 {
		t.Fatalf("idle connections = %d, want 1", idle())
	}
	deadline := time.Now().Add(5 * time.Second)
	for idle() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle connection not reaped without traffic")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Close empties the pool at once.
	ft.idleTimeout = time.Hour
	if _, _, err := upGet(t, ft, "GET", up.url().String()+"/"); err != nil {
		t.Fatal(err)
	}
	ft.CloseIdleConnections()
	if idle() != 0 {
		t.Errorf("idle connections after CloseIdleConnections = %d", idle())
	}
}
