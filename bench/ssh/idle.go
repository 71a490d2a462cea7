package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// idle is the result of holding n idle interactive sessions.
type idle struct {
	n                int
	open             time.Duration // to open all n
	rssBase, rssHeld int64         // Gatehouse's RSS in bytes before and while held
	rssAfter         int64         // after they closed
	metBase, metHeld map[string]float64
	probes           map[string][]time.Duration // connection setup while held, by path
}

func (r idle) perSession() float64 { return float64(r.rssHeld-r.rssBase) / float64(r.n) }

// runIdle opens n sessions through Gatehouse, each a shell on a pty that
// has printed its prompt and then moves nothing, with the Go SSH client
// in this process (1,000 OpenSSH clients would take gigabytes on a small
// machine; what is measured is Gatehouse, which sees the same protocol).
// While they are held it measures Gatehouse's RSS and the setup time of
// new OpenSSH connections (`ssh ... true`) on each probed path.
func (e *env) runIdle(n, parallel, probes int, hold time.Duration, probe []path) (idle, error) {
	r := idle{n: n, probes: map[string][]time.Duration{}}
	pid := e.gate.cmd.Process.Pid
	time.Sleep(time.Second)
	r.rssBase, r.metBase = rss(pid), e.metrics()
	var (
		mu      sync.Mutex
		clients []*gossh.Client
		first   error
	)
	next := make(chan int)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				c, err := e.idleShell()
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if c != nil {
					clients = append(clients, c)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop {
			break
		}
		next <- i
		if (i+1)%250 == 0 {
			fmt.Printf("  idle: %d sessions open (%.0fs)\n", i+1, time.Since(t0).Seconds())
		}
	}
	close(next)
	wg.Wait()
	r.open = time.Since(t0)
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	if first != nil {
		return r, fmt.Errorf("idle session %d of %d: %w", len(clients)+1, n, first)
	}
	time.Sleep(3 * time.Second) // let the sessions' recordings flush and settle
	r.rssHeld, r.metHeld = rss(pid), e.metrics()
	for i := 0; i < probes; i++ {
		for _, p := range probe {
			d, err := e.setupOnce(p)
			if err != nil {
				return r, err
			}
			r.probes[p.name] = append(r.probes[p.name], d)
		}
	}
	if hold > 0 {
		fmt.Printf("  holding %d sessions for %v (Gatehouse pid %d)\n", len(clients), hold, pid)
		time.Sleep(hold)
	}
	for _, c := range clients {
		_ = c.Close()
	}
	clients = nil
	time.Sleep(3 * time.Second)
	r.rssAfter = rss(pid)
	e.target.cpu.settleWithin(1, 2*time.Minute)
	e.target.cpu.quiet(time.Minute)
	e.gate.cpu.quiet(time.Minute)
	return r, nil
}

// idleShell opens one connection through Gatehouse with a shell on a pty
// and returns once the shell printed something (its prompt).
func (e *env) idleShell() (*gossh.Client, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", e.gPort)
	d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(e.source())}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	ca := e.hostCA.Marshal()
	checker := &gossh.CertChecker{IsHostAuthority: func(k gossh.PublicKey, _ string) bool { return bytes.Equal(k.Marshal(), ca) }}
	cfg := &gossh.ClientConfig{
		User: e.login + "@bench", Auth: []gossh.AuthMethod{gossh.PublicKeys(e.signer)},
		HostKeyCallback: checker.CheckHostKey, Timeout: 30 * time.Second,
		Config: gossh.Config{Ciphers: []string{"aes128-gcm@openssh.com"}},
	}
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := gossh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c := gossh.NewClient(sc, chans, reqs)
	s, err := c.NewSession()
	if err != nil {
		c.Close()
		return nil, err
	}
	prompt := &firstWrite{ch: make(chan struct{})}
	s.Stdout, s.Stderr = prompt, prompt
	if err = s.RequestPty("xterm", 24, 80, gossh.TerminalModes{}); err == nil {
		err = s.Shell()
	}
	if err == nil {
		select {
		case <-prompt.ch:
		case <-time.After(30 * time.Second):
			err = fmt.Errorf("no prompt in 30s")
		}
	}
	_ = nc.SetDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// firstWrite discards what it is given and closes ch at the first write.
type firstWrite struct {
	once sync.Once
	ch   chan struct{}
}

func (f *firstWrite) Write(p []byte) (int, error) {
	f.once.Do(func() { close(f.ch) })
	return len(p), nil
}

// setupOnce times one `ssh ... true` on path p.
func (e *env) setupOnce(p path) (time.Duration, error) {
	args := append([]string{"-F", p.cfg, "-b", e.source()}, p.args...)
	cmd := exec.Command("ssh", append(args, "true")...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s: ssh true: %v: %s", p.name, err, out)
	}
	return time.Since(t0), nil
}

// rss returns the resident set size of pid in bytes.
func rss(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// metricNames are the Go runtime gauges read from Gatehouse's /metrics to
// explain its RSS.
var metricNames = []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes"}

// metrics reads metricNames from Gatehouse's admin listener (empty if it
// does not answer).
func (e *env) metrics() map[string]float64 {
	m := map[string]float64{}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", e.adminPort))
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 {
			for _, n := range metricNames {
				if f[0] == n {
					m[n], _ = strconv.ParseFloat(f[1], 64)
				}
			}
		}
	}
	return m
}

// percentile returns the p-th percentile (0..100) of d, nearest rank.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
