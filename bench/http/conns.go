package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Gatehouse caps connections per source address (256, an IPv4 address
// or an IPv6 /64), so the many-connection modes spread their
// connections over loopback sources 127.0.1.1, 127.0.1.2, ... with
// perSource each. wrk and h2load cannot bind a source address, so these
// modes use the client below for Gatehouse and nginx alike.
const perSource = 200

// sourceAddr is the loopback source address of the i-th connection.
func sourceAddr(i int) *net.TCPAddr {
	n := i / perSource
	return &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+n/250), byte(1+n%250))}
}

// conn is one keep-alive HTTPS connection of the load client. It sends
// one request at a time and reads the whole answer before the next.
type conn struct {
	c   *tls.Conn // HTTP/1.1; nil over HTTP/2
	br  *bufio.Reader
	req []byte
	// h2 and h2req are set on an HTTP/2 connection (net/http's
	// single-connection client); c, req and br are then unused.
	h2    *http.ClientConn
	h2req func() *http.Request
}

// dialConn opens the i-th connection to u with the given headers, over
// HTTP/2 when h2 is set, else HTTP/1.1.
func dialConn(ctx context.Context, u *url.URL, i int, headers []string, roots *x509.CertPool, h2 bool) (*conn, error) {
	d := &net.Dialer{LocalAddr: sourceAddr(i), Timeout: 10 * time.Second}
	if h2 {
		return dialH2(ctx, d, u, headers, roots)
	}
	c, err := tls.DialWithDialer(d, "tcp", u.Host, &tls.Config{ServerName: u.Hostname(), RootCAs: roots, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: bench-http\r\n", u.RequestURI(), u.Host)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return &conn{c: c, br: bufio.NewReaderSize(c, 4096), req: []byte(b.String())}, nil
}

// dialH2 opens one HTTP/2 connection to u from d's source address.
func dialH2(ctx context.Context, d *net.Dialer, u *url.URL, headers []string, roots *x509.CertPool) (*conn, error) {
	tr := &http.Transport{
		DialContext:     d.DialContext,
		TLSClientConfig: &tls.Config{ServerName: u.Hostname(), RootCAs: roots},
		Protocols:       new(http.Protocols),
	}
	tr.Protocols.SetHTTP2(true)
	cc, err := tr.NewClientConn(ctx, "https", u.Host)
	if err != nil {
		return nil, err
	}
	h := http.Header{"User-Agent": {"bench-http"}}
	for _, line := range headers {
		k, v, _ := strings.Cut(line, ":")
		h.Add(k, strings.TrimSpace(v))
	}
	newReq := func() *http.Request {
		return &http.Request{Method: http.MethodGet, URL: u, Host: u.Host, Header: h.Clone()}
	}
	return &conn{h2: cc, h2req: newReq}, nil
}

// close closes the connection.
func (c *conn) close() {
	if c.h2 != nil {
		c.h2.Close()
		return
	}
	c.c.Close()
}

// do sends the request and reads the answer; it returns the status.
func (c *conn) do() (int, error) {
	if c.h2 != nil {
		res, err := c.h2.RoundTrip(c.h2req())
		if err != nil {
			return 0, err
		}
		if res.ProtoMajor != 2 {
			res.Body.Close()
			return 0, fmt.Errorf("answered over %s, want HTTP/2", res.Proto)
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, err
	}
	if _, err := c.c.Write(c.req); err != nil {
		return 0, err
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, err
}

// dialAll opens n connections to target t, each answering one request
// first, with at most 64 handshakes at a time. An answer that is not 200
// is recorded in e.fails (what names it) and its connection kept; a
// connection that fails ends the mode.
func (e *env) dialAll(t *target, what string, n int, h2 bool) ([]*conn, error) {
	u, err := url.Parse(t.url)
	if err != nil {
		return nil, err
	}
	conns := make([]*conn, n)
	errs := make(chan error, n)
	var mu sync.Mutex
	bad := statusCounts{}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := dialConn(context.Background(), u, i, t.headers, e.roots, h2)
			if err == nil {
				var code int
				if code, err = c.do(); err != nil {
					c.close()
				} else if code != http.StatusOK {
					mu.Lock()
					bad[code]++
					mu.Unlock()
				}
			}
			if err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	close(errs)
	if len(bad) > 0 {
		e.fails = append(e.fails, fmt.Sprintf("- %s, %s: first requests of %d connections answered %s (see %s)", what, t.name, n, bad,
			strings.Join(t.logs, ", ")))
	}
	if err := <-errs; err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

func closeAll(conns []*conn) {
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
}

// rssKiB is the resident memory of pid and its children (nginx workers).
func rssKiB(pid int) int64 {
	var total int64
	for _, p := range append([]int{pid}, childPIDs(pid)...) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total += n
			}
		}
	}
	return total
}

// childPIDs lists the direct children of pid.
func childPIDs(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// runIdle holds o.idleConns idle keep-alive HTTP/1.1 connections (each
// after one request) to Gatehouse and to nginx, and reports RSS per
// connection against the target.
func (e *env) runIdle() error {
	per, err := e.idleConns("idle", e.ghT, e.ngxT, false)
	if err != nil {
		return err
	}
	check(per <= 40, "gatehouse RSS per idle connection <= 40 KiB: %.1f KiB", per)
	return nil
}

// runIdleH2 is runIdle over HTTP/2, the browsers' protocol, against
// nginx's http2 listener. It is reported; the target is for
// HTTP/1.1.
func (e *env) runIdleH2() error {
	ngx := *e.ngxT
	ngx.url = fmt.Sprintf("https://localhost:%d/", e.ports["nginxh2"])
	per, err := e.idleConns("idle-h2", e.ghT, &ngx, true)
	if err != nil {
		return err
	}
	fmt.Printf("  (reported) gatehouse RSS per idle HTTP/2 connection: %.1f KiB\n", per)
	return nil
}

// idleConns holds o.idleConns idle connections to gh and to ngx, prints
// the RSS per connection of each, and returns Gatehouse's.
func (e *env) idleConns(mode string, gh, ngx *target, h2 bool) (float64, error) {
	n := e.o.idleConns
	proto := "HTTP/1.1"
	if h2 {
		proto = "HTTP/2"
	}
	fmt.Printf("\nidle keep-alive %s connections: %d to each, one request on each first, RSS %s later; load %s\n", proto, n, e.o.idleSettle, loadavg())
	var ghPer float64
	for _, t := range []*target{gh, ngx} {
		pid := t.proc.cmd.Process.Pid
		before := rssKiB(pid)
		conns, err := e.dialAll(t, mode, n, h2)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", t.name, err)
		}
		// Let the server settle. Go returns memory (grown goroutine
		// stacks above all) only after a garbage collection, which an
		// idle process runs every 2 minutes: -idle-settle 130s measures
		// that steady state.
		time.Sleep(e.o.idleSettle)
		after := rssKiB(pid)
		if t.goMemory != nil {
			fmt.Printf("%-26s %s\n", t.name, t.goMemory())
		}
		// Every connection must still be open and usable.
		var failed atomic.Int64
		var wg sync.WaitGroup
		for _, c := range conns[:min(len(conns), 100)] {
			wg.Go(func() {
				if code, err := c.do(); err != nil || code != http.StatusOK {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		closeAll(conns)
		per := float64(after-before) / float64(n)
		fmt.Printf("%-26s RSS %d KiB -> %d KiB with %d idle connections: %.1f KiB per connection; %d of 100 re-used connections failed\n",
			t.name, before, after, n, per, failed.Load())
		if failed.Load() > 0 {
			e.fails = append(e.fails, fmt.Sprintf("- %s, %s: %d of 100 held connections failed a second request", mode, t.name, failed.Load()))
		}
		if t == gh {
			ghPer = per
		}
		time.Sleep(time.Second)
	}
	return ghPer, nil
}

// runLoad keeps n connections busy for d, one request at a time each.
func (e *env) runLoad(t *target, n int, d time.Duration) (wrkResult, error) {
	conns, err := e.dialAll(t, fmt.Sprintf("%d connections", n), n, false)
	if err != nil {
		return wrkResult{}, err
	}
	defer closeAll(conns)
	var mu sync.Mutex
	var lat []time.Duration
	bad := map[string]int64{}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			mine := make([]time.Duration, 0, 1024)
			var errs []string
			for time.Now().Before(deadline) {
				t0 := time.Now()
				code, err := c.do()
				switch {
				case err != nil:
					errs = append(errs, err.Error())
				case code < 200 || code >= 400:
					errs = append(errs, "status "+strconv.Itoa(code))
				}
				if err != nil {
					break
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			for _, e := range errs {
				bad[e]++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(lat) == 0 {
		return wrkResult{}, fmt.Errorf("no request succeeded: %v", bad)
	}
	slices.Sort(lat)
	r := wrkResult{requests: int64(len(lat)), rps: float64(len(lat)) / elapsed.Seconds(), p99: lat[len(lat)*99/100]}
	var parts []string
	for k, v := range bad {
		parts = append(parts, fmt.Sprintf("%d×%s", v, k))
		r.non2xx += v
	}
	slices.Sort(parts)
	r.errors = strings.Join(parts, "; ")
	return r, nil
}

// runMany measures Gatehouse and nginx with o.manyConns active
// connections (the client above, from several source addresses).
func (e *env) runMany() error {
	o := e.o
	fmt.Printf("\n%d active connections (Go client, one request at a time per connection), %d interleaved rounds of %s; load %s\n",
		o.manyConns, o.rounds, o.duration, loadavg())
	targets := []*target{copyTarget(e.ghT), copyTarget(e.ngxT)}
	for round := 1; round <= o.rounds; round++ {
		for _, t := range targets {
			s, err := e.measure(t, fmt.Sprintf("%d connections round %d", o.manyConns, round), func() (wrkResult, error) {
				return e.runLoad(t, o.manyConns, o.duration)
			})
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			t.results = append(t.results, s)
			printSample("many", round, t.name, s)
		}
	}
	r := table(fmt.Sprintf("%d active connections: medians of %d rounds", o.manyConns, o.rounds), targets,
		func(t *target) []sample { return t.results })
	fmt.Printf("\n%d connections (reported, no target): gatehouse %.2fx nginx req/s, CPU/req %.2fx, p99 %.2fx\n", o.manyConns,
		r.gh.rps/r.ngx.rps, float64(r.gh.cpu)/float64(r.ngx.cpu), float64(r.gh.p99)/float64(r.ngx.p99))
	return nil
}

// copyTarget is t without its results.
func copyTarget(t *target) *target {
	c := *t
	c.results, c.paced = nil, nil
	return &c
}

// runGrowth reports CPU per request at 1, 10, 100 (wrk) and 1000 (the Go
// client) connections, Gatehouse beside nginx, one short run each.
func (e *env) runGrowth() error {
	o := e.o
	d := o.duration / 2
	fmt.Printf("\nhow cost grows: CPU µs per request by connections, one %s run each; load %s\n", d, loadavg())
	fmt.Printf("%-12s %14s %14s %10s\n", "connections", "gatehouse", "nginx", "ratio")
	for _, n := range []int{1, 10, 100, 1000} {
		var cpu [2]time.Duration
		var rps [2]float64
		for i, base := range []*target{e.ghT, e.ngxT} {
			t := copyTarget(base)
			s, err := e.measure(t, fmt.Sprintf("growth %d connections", n), func() (wrkResult, error) {
				if n > 100 {
					return e.runLoad(t, n, d)
				}
				return runWrk(t.url, t.headers, min(o.threads, n), n, d, "")
			})
			if err != nil {
				return fmt.Errorf("%s at %d: %w", t.name, n, err)
			}
			cpu[i], rps[i] = s.cpuPerReq, s.rps
		}
		fmt.Printf("%-12d %8.1f µs/req %8.1f µs/req %9.2fx   (req/s %.0f vs %.0f)\n", n, us(cpu[0]), us(cpu[1]),
			float64(cpu[0])/float64(cpu[1]), rps[0], rps[1])
	}
	return nil
}
