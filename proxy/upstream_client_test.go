package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// testClient is the transport NewUpstream builds for an upstream at u,
// with a short header timeout.
func testClient(t *testing.T, u string) *keepAliveClient {
	t.Helper()
	target, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := newUpstreamTransport(target, 2*time.Second).(*keepAliveClient)
	if !ok {
		t.Fatalf("transport for %s is not the keep-alive client", u)
	}
	t.Cleanup(k.CloseIdleConnections)
	return k
}

// get sends a GET (or HEAD) for path through k and returns the status and
// the whole body.
func get(t *testing.T, k http.RoundTripper, method, base, path string) (int, string, error) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, nil)
	res, err := k.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(b), err
}

// countConns serves h and counts the connections opened to it.
func countConns(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			n.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &n
}

func echoPath(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("big") != "" {
		fmt.Fprint(w, strings.Repeat(r.URL.Path, 20000))
		return
	}
	fmt.Fprint(w, r.URL.Path)
}

func TestKeepAliveClientReusesOneConnection(t *testing.T) {
	up, conns := countConns(t, http.HandlerFunc(echoPath))
	k := testClient(t, up.URL)
	for i := range 20 {
		method := http.MethodGet
		if i%4 == 3 {
			method = http.MethodHead
		}
		code, body, err := get(t, k, method, up.URL, "/r"+strconv.Itoa(i))
		if err != nil || code != 200 {
			t.Fatalf("%s %d: %d %v", method, i, code, err)
		}
		if want := "/r" + strconv.Itoa(i); method == http.MethodGet && body != want {
			t.Fatalf("GET %d: body %q, want %q", i, body, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 requests in a row opened %d connections, want 1", n)
	}
}

// rawUpstream accepts connections and runs serve on each.
func rawUpstream(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// readReq reads one request head from br.
func readReq(br *bufio.Reader) (*http.Request, error) {
	return http.ReadRequest(br)
}

func answer(c net.Conn, body string) {
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// keptAliveUpstream answers every request on a connection until the
// client closes it (whatever an answer said), with special's answer where
// it gives one and with the request's path otherwise, and counts the
// connections.
func keptAliveUpstream(t *testing.T, special func(c net.Conn, req *http.Request) bool) (string, *atomic.Int64) {
	var conns atomic.Int64
	base := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		conns.Add(1)
		for {
			req, err := readReq(br)
			if err != nil {
				return
			}
			if !special(c, req) {
				answer(c, req.URL.Path)
			}
		}
	})
	return base, &conns
}

// TestKeepAliveClientBodyLeftUnreadClosesTheConnection: a body closed
// before its end leaves the rest of it on the way; the connection must
// not carry the next request, which would read that rest as its answer.
func TestKeepAliveClientBodyLeftUnreadClosesTheConnection(t *testing.T) {
	base, conns := keptAliveUpstream(t, func(c net.Conn, req *http.Request) bool {
		if req.URL.Path != "/split" {
			return false
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n0123456789")
		time.Sleep(50 * time.Millisecond)
		io.WriteString(c, "HTTP/1.1 9")
		return true
	})
	k := testClient(t, base)
	req, _ := http.NewRequest(http.MethodGet, base+"/split", nil)
	res, err := k.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	// A read after Close must not reach the connection.
	if n, err := res.Body.Read(make([]byte, 10)); n != 0 || err == nil {
		t.Fatalf("read after close: %d, %v", n, err)
	}
	if _, body, err := get(t, k, http.MethodGet, base, "/second"); err != nil || body != "/second" {
		t.Fatalf("next request: %q, %v (want its own answer)", body, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("connections: %d, want 2 (the half-read one closed)", n)
	}
}

// TestKeepAliveClientCancelledBodyIsNotPooled: a request cancelled after
// its answer arrived, whose body is then read to the end from the
// buffer, leaves a connection the cancellation has put a past deadline
// on; it must be closed, not pooled.
func TestKeepAliveClientCancelledBodyIsNotPooled(t *testing.T) {
	up, _ := countConns(t, http.HandlerFunc(echoPath))
	k := testClient(t, up.URL)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, up.URL+"/late", nil)
	res, err := k.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	time.Sleep(20 * time.Millisecond) // the cancellation hook has run
	if b, err := io.ReadAll(res.Body); err != nil || string(b) != "/late" {
		t.Fatalf("body %q, %v (it was buffered before the cancel)", b, err)
	}
	res.Body.Close()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.idle) != 0 {
		t.Errorf("%d idle connections after a cancelled request, want 0", len(k.idle))
	}
}

// TestKeepAliveClientStrayBytesNeverAnswerTheNextRequest: an upstream that
// sends more than the framed answer (a body after a HEAD answer, with it
// or a moment later) must not have those bytes read as the next request's
// answer, which may be someone else's. (Bytes that arrive in the same
// instant as the next request cannot be told from its answer by any
// HTTP/1.1 client; http.Transport has the same window.)
func TestKeepAliveClientStrayBytesNeverAnswerTheNextRequest(t *testing.T) {
	const stray = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray"
	for _, delay := range []time.Duration{0, 50 * time.Millisecond} {
		t.Run("after "+delay.String(), func(t *testing.T) {
			sent := make(chan struct{}, 1) // the stray bytes are on their way
			base := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
				for {
					req, err := readReq(br)
					if err != nil {
						return
					}
					if req.Method != http.MethodHead {
						answer(c, req.URL.Path)
						continue
					}
					head := "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"
					if delay == 0 {
						io.WriteString(c, head+stray) // one segment
					} else {
						io.WriteString(c, head)
						time.Sleep(delay)
						io.WriteString(c, stray)
					}
					sent <- struct{}{}
				}
			})
			k := testClient(t, base)
			if code, _, err := get(t, k, http.MethodHead, base, "/head"); err != nil || code != 200 {
				t.Fatalf("HEAD: %d %v", code, err)
			}
			// On loopback, written bytes are readable at once: the next
			// request goes out after they arrived, never in the same instant.
			select {
			case <-sent:
			case <-time.After(5 * time.Second):
				t.Fatal("the upstream did not send its stray answer")
			}
			if _, body, err := get(t, k, http.MethodGet, base, "/mine"); err != nil || body != "/mine" {
				t.Fatalf("GET after the stray answer: %q, %v; want %q", body, err, "/mine")
			}
		})
	}
}

// TestKeepAliveClientResendsOnAClosedIdleConnection: an upstream that
// closes a kept-alive connection without answering (its idle timeout
// raced the request) costs a retry on a new connection, not an error.
func TestKeepAliveClientResendsOnAClosedIdleConnection(t *testing.T) {
	var conns atomic.Int64
	base := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		conns.Add(1)
		req, err := readReq(br)
		if err != nil {
			return
		}
		answer(c, req.URL.Path)
		// Reads the second request and hangs up without a word.
		_, _ = readReq(br)
	})
	k := testClient(t, base)
	for i := range 3 {
		p := "/n" + strconv.Itoa(i)
		if _, body, err := get(t, k, http.MethodGet, base, p); err != nil || body != p {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
	}
	if n := conns.Load(); n < 3 {
		t.Errorf("connections: %d, want a new one per request", n)
	}
}

func TestKeepAliveClientCancelFailsAtOnceAndDropsTheConnection(t *testing.T) {
	got := make(chan struct{}, 1)
	base := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readReq(br); err == nil {
			got <- struct{}{}
		}
		_, _ = br.ReadByte() // until the client hangs up
	})
	k := testClient(t, base)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/slow", nil)
	done := make(chan error, 1)
	go func() {
		_, err := k.RoundTrip(req)
		done <- err
	}()
	<-got
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Fatal("RoundTrip did not return after cancel (header timeout is 2 s)")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.idle) != 0 {
		t.Errorf("%d idle connections after a cancelled request, want 0", len(k.idle))
	}
}

func TestKeepAliveClientHostileAnswers(t *testing.T) {
	cases := []struct {
		name  string
		serve func(c net.Conn)
		want  func(error) bool
	}{
		{"endless header", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			line := "X-Pad: " + strings.Repeat("a", 1000) + "\r\n"
			for range 2000 {
				if _, err := io.WriteString(c, line); err != nil {
					return
				}
			}
		}, func(err error) bool { return errors.Is(err, errHeaderTooLarge) }},
		{"no answer", func(c net.Conn) { time.Sleep(2 * time.Second) }, func(err error) bool {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout()
		}},
		{"unasked protocol switch", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
		}, func(err error) bool { return errors.Is(err, errUnrequestedSwitch) }},
		{"endless early hints", func(c net.Conn) {
			for range 10 {
				io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
			}
		}, func(err error) bool { return err != nil && strings.Contains(err.Error(), "informational") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := readReq(br); err == nil {
					tc.serve(c)
				}
			})
			k := testClient(t, base)
			k.headerWait = 300 * time.Millisecond
			start := time.Now()
			_, _, err := get(t, k, http.MethodGet, base, "/")
			if !tc.want(err) {
				t.Fatalf("error %v", err)
			}
			if d := time.Since(start); d > 1500*time.Millisecond {
				t.Errorf("took %v (the header timeout is 300 ms)", d)
			}
		})
	}
}

func TestKeepAliveClientPassesEarlyHints(t *testing.T) {
	base := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readReq(br); err == nil {
			pad := strings.Repeat("p", 600)
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nX-Pad: "+pad+"\r\n\r\n")
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nX-Pad: "+pad+"\r\n\r\n")
			answer(c, "final")
		}
	})
	k := testClient(t, base)
	k.maxHeader = 1000 // each answer's header fits, all together do not
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, strconv.Itoa(code)+" "+h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, base+"/", nil)
	res, err := k.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "final" || len(hints) != 2 || hints[0] != "103 </style.css>; rel=preload" {
		t.Fatalf("body %q, hints %q", body, hints)
	}
}

func TestKeepAliveClientLeavesOtherRequestsToTheTransport(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	}))
	t.Cleanup(up.Close)
	k := testClient(t, up.URL)
	for _, tc := range []struct {
		method, body string
		eligible     bool
	}{{"GET", "", true}, {"HEAD", "", true}, {"POST", "x", false}, {"GET", "body", false}, {"DELETE", "", false}} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		req, _ := http.NewRequest(tc.method, up.URL+"/", body)
		if got := k.eligible(req); got != tc.eligible {
			t.Errorf("%s with body %q: eligible %v, want %v", tc.method, tc.body, got, tc.eligible)
		}
		res, err := k.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want := tc.method + " " + tc.body; tc.method != "HEAD" && string(b) != want {
			t.Errorf("%s: %q, want %q", tc.method, b, want)
		}
	}
	up2, _ := url.Parse(up.URL)
	up2.Host = "127.0.0.2:1"
	if k.eligible(&http.Request{Method: "GET", URL: up2, Header: http.Header{}}) {
		t.Error("a request for another host is eligible")
	}
	for name, h := range map[string]http.Header{
		"an upgrade":               {"Upgrade": {"websocket"}},
		"a header name with space": {"X Bad": {"v"}},
		"a header value with CRLF": {"X-Bad": {"v\r\nX-Injected: 1"}},
	} {
		if k.eligible(&http.Request{Method: "GET", URL: mustURL(up.URL), Header: h}) {
			t.Errorf("%s is eligible", name)
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestKeepAliveClientOwnerUnderChaos shares one client among many callers
// that read their answers whole, stop half-way, or cancel, against
// answers of every framing (length, chunked, none, HEAD), and checks that
// every answer read whole is the one to its own request.
func TestKeepAliveClientOwnerUnderChaos(t *testing.T) {
	up, conns := countConns(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		w.Header().Set("X-Id", id)
		switch r.URL.Query().Get("kind") {
		case "dribble":
			// The rest of the body is still on its way when a caller
			// that stops early closes it.
			body := strings.Repeat(id+",", 400)
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			fmt.Fprint(w, body[:len(body)/2])
			w.(http.Flusher).Flush()
			time.Sleep(time.Millisecond)
			fmt.Fprint(w, body[len(body)/2:])
		case "close":
			w.Header().Set("Connection", "close")
			fmt.Fprint(w, id)
		case "chunked":
			for range 3 {
				fmt.Fprint(w, strings.Repeat(id+",", 500))
				w.(http.Flusher).Flush()
			}
		case "empty":
			w.WriteHeader(http.StatusNoContent)
		case "slow":
			time.Sleep(time.Millisecond)
			fmt.Fprint(w, id)
		default:
			body := strings.Repeat(id+",", 1+len(id)*37%3000)
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			fmt.Fprint(w, body)
		}
	}))
	k := testClient(t, up.URL)
	kinds := []string{"length", "chunked", "empty", "slow", "dribble", "close"}
	var wg sync.WaitGroup
	var whole atomic.Int64
	for g := range 24 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 150 {
				id := fmt.Sprintf("g%di%d", g, i)
				kind := kinds[rng.IntN(len(kinds))]
				method := http.MethodGet
				if rng.IntN(8) == 0 {
					method = http.MethodHead
				}
				ctx, cancel := context.WithCancel(context.Background())
				req, _ := http.NewRequestWithContext(ctx, method, up.URL+"/?id="+id+"&kind="+kind, nil)
				action := rng.IntN(6)
				if action == 0 {
					time.AfterFunc(time.Duration(rng.IntN(500))*time.Microsecond, cancel)
				}
				res, err := k.RoundTrip(req)
				if err != nil {
					cancel()
					if action != 0 {
						t.Errorf("%s: %v", id, err)
					}
					continue
				}
				if got := res.Header.Get("X-Id"); got != id {
					t.Errorf("%s got the answer of %s", id, got)
				}
				if action == 1 {
					_, _ = res.Body.Read(make([]byte, 7))
					res.Body.Close()
					cancel()
					continue
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				cancel()
				if err != nil {
					if action != 0 {
						t.Errorf("%s: body: %v", id, err)
					}
					continue
				}
				if method == http.MethodHead || kind == "empty" {
					if len(b) != 0 {
						t.Errorf("%s (%s %s): body %q, want none", id, method, kind, b)
					}
				} else if bad := strings.ReplaceAll(strings.ReplaceAll(string(b), id+",", ""), id, ""); bad != "" || len(b) == 0 {
					t.Errorf("%s (%s): body has someone else's bytes: %.60q", id, kind, bad)
				}
				whole.Add(1)
			}
		})
	}
	wg.Wait()
	if whole.Load() < 24*150/2 {
		t.Errorf("only %d answers read whole", whole.Load())
	}
	// The test is about pooled connections: most requests must have
	// used one (a sixth of the answers close theirs, a sixth of the
	// callers stop early or cancel).
	if n := conns.Load(); n > 24*150/2 {
		t.Errorf("%d connections for %d requests: the pool was hardly used", n, 24*150)
	}
}

// TestKeepAliveClientFreshConnectionFailureIsTheAnswer: an upstream that
// hangs up on every request gets the request once on a fresh connection,
// and the caller an error, not a loop of new connections.
func TestKeepAliveClientFreshConnectionFailureIsTheAnswer(t *testing.T) {
	var conns atomic.Int64
	base := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		conns.Add(1)
		_, _ = readReq(br)
	})
	k := testClient(t, base)
	if _, _, err := get(t, k, http.MethodGet, base, "/"); err == nil {
		t.Fatal("no error from an upstream that hangs up")
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestKeepAliveClientConnectionCloseIsHonoured: an answer with
// Connection: close (or an HTTP/1.0 one without keep-alive) ends its
// connection; the next request opens another.
func TestKeepAliveClientConnectionCloseIsHonoured(t *testing.T) {
	// The upstream keeps the connection open whatever it said: only the
	// client's honouring of the header ends it.
	base, conns := keptAliveUpstream(t, func(c net.Conn, req *http.Request) bool {
		switch req.URL.Path {
		case "/close":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 6\r\n\r\n/close")
		case "/old":
			io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\n/old")
		default:
			return false
		}
		return true
	})
	k := testClient(t, base)
	for i, p := range []string{"/close", "/a", "/old", "/b"} {
		if _, body, err := get(t, k, http.MethodGet, base, p); err != nil || body != p {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (a new one after /close and after /old)", n)
	}
}

// TestKeepAliveClientClosesIdleConnections: connections idle for the idle
// timeout are closed without waiting for another request.
func TestKeepAliveClientClosesIdleConnections(t *testing.T) {
	closed := make(chan struct{}, 1)
	s := httptest.NewUnstartedServer(http.HandlerFunc(echoPath))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed <- struct{}{}
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	k := testClient(t, s.URL)
	k.idleTimeout = 100 * time.Millisecond
	if _, body, err := get(t, k, http.MethodGet, s.URL, "/x"); err != nil || body != "/x" {
		t.Fatalf("%q, %v", body, err)
	}
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("the idle connection was not closed 2 s after its 100 ms idle timeout")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.idle) != 0 || k.reaping {
		t.Errorf("pool after the reap: %d idle, reaping %v", len(k.idle), k.reaping)
	}
}

// TestUpstreamCloseRetiresItsConnections: Close on a route's upstream (a
// reload replaced it) closes its idle connection at once, and a connection
// whose answer was still being read closes when the answer ends instead of
// going back to a pool nobody will take from again.
func TestUpstreamCloseRetiresItsConnections(t *testing.T) {
	release := make(chan struct{})
	var open atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			fmt.Fprint(w, "head-")
			w.(http.Flusher).Flush()
			<-release
		}
		fmt.Fprint(w, r.URL.Path)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before s.Close, which waits for the handler
	hop, err := NewUpstream(config.Route{Name: "app", Host: "app.test", Upstream: s.URL,
		Timeout: config.Duration(2 * time.Second)}, upSigner(t, upBolt(t), time.Now), upTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	k := hop.rp.Transport.(*keepAliveClient)
	// One connection whose answer is half read, and one idle.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/slow", nil)
	res, err := k.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, body, err := get(t, k, http.MethodGet, s.URL, "/idle"); err != nil || body != "/idle" {
		t.Fatalf("%q, %v", body, err)
	}
	waitFor(t, "two upstream connections", func() bool { return open.Load() == 2 })

	if err := hop.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle connection to close", func() bool { return open.Load() == 1 })
	unblock()
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || string(b) != "head-/slow" {
		t.Fatalf("answer in flight at Close: %q, %v", b, err)
	}
	waitFor(t, "the in-flight connection to close after its answer", func() bool { return open.Load() == 0 })
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.idle) != 0 {
		t.Errorf("%d connections pooled after Close", len(k.idle))
	}
}

// waitFor polls cond for up to 2 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestKeepAliveClientBodyAfterCancelOrClose: a client that goes away in the
// middle of a body makes the next read report the cancellation (as
// http.Transport does; ReverseProxy logs any other error as an upstream
// failure), and a read after Close is an error, not an EOF that would pass
// a cut-short body off as whole.
func TestKeepAliveClientBodyAfterCancelOrClose(t *testing.T) {
	base := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readReq(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst-")
		_, _ = br.ReadByte() // the rest never comes; wait for the hang-up
	})
	k := testClient(t, base)
	for _, end := range []string{"cancel", "close"} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
		res, err := k.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != "first-" {
			t.Fatalf("%s: first read %q, %v", end, buf, err)
		}
		if end == "cancel" {
			cancel()
			if _, err := res.Body.Read(buf); !errors.Is(err, context.Canceled) {
				t.Errorf("read after the client left: %v, want context.Canceled", err)
			}
		}
		res.Body.Close()
		if n, err := res.Body.Read(buf); n != 0 || err == nil || err == io.EOF {
			t.Errorf("%s: read after Close = %d, %v; want an error other than EOF", end, n, err)
		}
		cancel()
	}
}

// TestUpstreamStatusBelow100IsBadGateway: "HTTP/1.1 000" parses as status
// 0, on which ReverseProxy's WriteHeader panics; the hop answers 502.
func TestUpstreamStatusBelow100IsBadGateway(t *testing.T) {
	base := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readReq(br); err == nil {
			io.WriteString(c, "HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nhi")
		}
	})
	hop, err := NewUpstream(config.Route{Name: "app", Host: "app.test", Upstream: base,
		Timeout: config.Duration(2 * time.Second)}, upSigner(t, upBolt(t), time.Now), upTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	hop.Serve(rec, httptest.NewRequest(http.MethodGet, "https://app.test/", nil), upAlice)
	if rec.Code != http.StatusBadGateway {
		t.Errorf("status %d, want 502", rec.Code)
	}
}
