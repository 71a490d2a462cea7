// Command http is Gatehouse's HTTP proxy benchmark (`make bench-http`). In
// one run on loopback it starts a small upstream (nginx serving a static
// page), Gatehouse with a real, pre-provisioned session, nginx as a TLS
// reverse proxy with upstream keep-alive, and oauth2-proxy v7 with a real
// session (signed in through Dex), then measures each with wrk over HTTPS
// with keep-alive in interleaved rounds and prints medians of requests per
// second, p99 latency and the proxy's CPU time per request, each also as a
// ratio to nginx. With -profile it also takes a CPU profile of Gatehouse
// under the same load.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "inproc":
			os.Exit(runInproc(os.Args[2:]))
		case "bare":
			os.Exit(runBare(os.Args[2:]))
		}
	}
	os.Exit(run())
}

// options are the command-line flags.
type options struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	threads     int
	conns       int
	gatehouse   string
	oauth2Proxy string
	dex         string
	inproc      bool
	profile     bool
	keep        bool
	only        string
	pause       time.Duration
	env         string
	modes       string
	h2Conns     int
	h2Streams   int
	idleConns   int
	manyConns   int
	profileH2   bool
	idleSettle  time.Duration
}

func run() int {
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds (medians are reported)")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "wrk duration per run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "wrk warm-up per target before the rounds")
	flag.IntVar(&o.threads, "t", 2, "wrk threads")
	flag.IntVar(&o.conns, "c", 32, "wrk connections")
	flag.StringVar(&o.gatehouse, "gatehouse", "./gatehouse", "gatehouse binary")
	flag.StringVar(&o.oauth2Proxy, "oauth2-proxy", ".tools/bin/oauth2-proxy", "oauth2-proxy binary (v7.15.6)")
	flag.StringVar(&o.dex, "dex", ".tools/bin/dex", "dex binary")
	flag.BoolVar(&o.inproc, "inproc", false, "measure the in-process composition instead of the gatehouse binary")
	flag.BoolVar(&o.profile, "profile", true, "take a CPU profile of Gatehouse under load after the rounds")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs, profile)")
	flag.DurationVar(&o.pause, "pause", 4*time.Millisecond, "per-connection pause for the fixed-load latency rounds (0: skip them)")
	flag.StringVar(&o.env, "gatehouse-env", "", "extra `VAR=value` in Gatehouse's environment (e.g. GOGC=200)")
	flag.StringVar(&o.modes, "modes", "h1,h2,big,idle,many,growth,profile",
		"comma-separated `modes`: h1, h2, big (1 MiB down and up), idle (10,000 idle connections), idle-h2 (the same over HTTP/2; not in the default: run it alone, as RSS a process already grew is reused), many (1,000 active), growth (CPU per request at 1-1000 connections), profile, or all")
	flag.IntVar(&o.h2Conns, "h2-c", 32, "h2load connections")
	flag.IntVar(&o.h2Streams, "h2-m", 10, "h2load concurrent streams per connection")
	flag.IntVar(&o.idleConns, "idle", 10000, "idle keep-alive connections held in the idle mode")
	flag.BoolVar(&o.profileH2, "profile-h2", false, "profile under h2load (HTTP/2) instead of wrk")
	flag.DurationVar(&o.idleSettle, "idle-settle", 2*time.Second, "wait before measuring RSS in the idle mode")
	flag.IntVar(&o.manyConns, "many", 1000, "active connections in the many mode")
	flag.StringVar(&o.only, "only", "", "measure only targets whose name contains this (development; no ratios)")
	flag.Parse()
	if err := bench(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-http:", err)
		return 1
	}
	return 0
}

// target is one thing measured.
type target struct {
	name     string
	url      string
	page     string // answers with the upstream's small page; "": url
	headers  []string
	proc     *proc         // whose CPU is counted
	statuses statusSource  // its answers by status; nil: only the client's count
	goMemory func() string // Gatehouse's Go memory by class; nil: not a Go server
	logs     []string      // its log files, shown for a failed run
	results  []sample
	paced    []sample // at a fixed offered load
}

// sample is one measured run.
type sample struct {
	wrkResult
	cpuPerReq time.Duration
	cpu       time.Duration
}

func bench(o options) error {
	e, err := setup(o)
	if e != nil {
		defer e.close()
	}
	if err != nil {
		return err
	}
	modeErr := e.runModes()
	if len(e.fails) > 0 {
		fmt.Printf("\nFAILED: %d runs had answers that were not 2xx/3xx or socket errors:\n", len(e.fails))
		for _, f := range e.fails {
			fmt.Println(f)
		}
		return errors.Join(modeErr, fmt.Errorf("%d runs had errors", len(e.fails)))
	}
	return modeErr
}

// runModes runs the modes o.modes names, in a fixed order.
func (e *env) runModes() error {
	want := map[string]bool{}
	for _, m := range strings.Split(e.o.modes, ",") {
		want[strings.TrimSpace(m)] = true
	}
	steps := []struct {
		name string
		fn   func() error
		// alone: only when named, not with "all" (see idle-h2)
		alone bool
	}{
		{"h1", e.runH1, false}, {"h2", e.runH2, false}, {"big", e.runBig, false}, {"idle", e.runIdle, false},
		{"idle-h2", e.runIdleH2, true}, {"many", e.runMany, false}, {"growth", e.runGrowth, false}, {"profile", e.runProfile, false},
	}
	for _, s := range steps {
		if !want[s.name] && (!want["all"] || s.alone) {
			continue
		}
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// runH1 is the small page over HTTP/1.1 with wrk, saturated and at a
// fixed offered load.
func (e *env) runH1() error {
	o := e.o
	targets := e.targets
	fmt.Printf("\nHTTP/1.1: wrk -t%d -c%d -d%s --latency over HTTPS keep-alive; %d interleaved rounds; upstream: nginx static page (%d bytes); load %s\n",
		o.threads, o.conns, o.duration, o.rounds, len(upstreamBody), loadavg())
	wrk := func(t *target, script string) func() (wrkResult, error) {
		return func() (wrkResult, error) {
			return runWrk(t.url, t.headers, o.threads, o.conns, o.duration, script)
		}
	}
	for _, t := range targets {
		if err := checkBody(e.client, t.url, t.headers); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if _, err := runWrk(t.url, t.headers, o.threads, o.conns, o.warmup, ""); err != nil {
			return fmt.Errorf("%s warm-up: %w", t.name, err)
		}
	}
	for round := 1; round <= o.rounds; round++ {
		for _, t := range targets {
			s, err := e.measure(t, "h1 round "+strconv.Itoa(round), wrk(t, ""))
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, t.name, err)
			}
			t.results = append(t.results, s)
			printSample("round", round, t.name, s)
		}
	}
	if o.pause > 0 {
		script := filepath.Join(e.dir, "pace.lua")
		if err := writePacingScript(script, o.pause); err != nil {
			return err
		}
		fmt.Printf("\nfixed offered load: %d connections, each pausing %s between requests (about %.0f req/s at most)\n",
			o.conns, o.pause, float64(o.conns)/o.pause.Seconds())
		for round := 1; round <= o.rounds; round++ {
			for _, t := range targets {
				s, err := e.measure(t, "h1 paced round "+strconv.Itoa(round), wrk(t, script))
				if err != nil {
					return fmt.Errorf("paced round %d, %s: %w", round, t.name, err)
				}
				t.paced = append(t.paced, s)
				printSample("paced", round, t.name, s)
			}
		}
	}
	if o.only == "" {
		report(targets, o)
	}
	return nil
}

// runProfile takes a CPU profile of the in-process composition (the
// measured process is stopped first: the store allows one holder).
func (e *env) runProfile() error {
	e.gh.stop()
	return profileGatehouse(e.dir, e.self, e.gs, e.client, e.o)
}

func printSample(kind string, round int, name string, s sample) {
	fmt.Printf("%s %d  %-26s %9.0f req/s  p99 %8s  %6.1f µs CPU/req%s\n", kind, round, name, s.rps,
		s.p99.Round(time.Microsecond), us(s.cpuPerReq), errNote(s.errors))
}

func errNote(s string) string {
	if s == "" {
		return ""
	}
	return "  [" + s + "]"
}

// measure runs one load run against t, counting the CPU time of t's
// process tree and t's answers by status, and checks before and after
// that t still answers with the upstream's page (so no run measures
// redirects). A run with answers that were not 2xx/3xx or with socket
// errors is recorded in e.fails with the statuses and t's new log lines.
func (e *env) measure(t *target, what string, run func() (wrkResult, error)) (sample, error) {
	page := t.url
	if t.page != "" {
		page = t.page
	}
	if err := checkBody(e.client, page, t.headers); err != nil {
		return sample{}, err
	}
	var before statusCounts
	if t.statuses != nil {
		var err error
		if before, err = t.statuses(); err != nil {
			return sample{}, fmt.Errorf("statuses: %w", err)
		}
	}
	offsets := make([]int64, len(t.logs))
	for i, l := range t.logs {
		offsets[i] = fileSize(l)
	}
	pid := t.proc.cmd.Process.Pid
	cpuBefore, err := cpuTicks(pid)
	if err != nil {
		return sample{}, err
	}
	r, err := run()
	if err != nil {
		return sample{}, err
	}
	cpuAfter, err := cpuTicks(pid)
	if err != nil {
		return sample{}, err
	}
	var bad statusCounts
	if t.statuses != nil {
		after, err := t.statuses()
		if err != nil {
			return sample{}, fmt.Errorf("statuses: %w", err)
		}
		bad = after.bad(before)
	}
	if r.errors != "" || r.non2xx > 0 || len(bad) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "- %s, %s: client: %s; server statuses: %s\n", what, t.name, r.errors, bad)
		for i, l := range t.logs {
			if tail := logSince(l, offsets[i], 4000); tail != "" {
				fmt.Fprintf(&b, "  %s:\n%s", filepath.Base(l), indent(tail))
			}
		}
		e.fails = append(e.fails, b.String())
	}
	if err := checkBody(e.client, page, t.headers); err != nil {
		return sample{}, errors.Join(errors.New("after the run"), err)
	}
	cpu := time.Duration(cpuAfter-cpuBefore) * time.Second / clockTicks
	return sample{wrkResult: r, cpu: cpu, cpuPerReq: cpu / time.Duration(max(r.requests, 1))}, nil
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

// profileGatehouse runs the in-process composition with a CPU profile
// under one wrk run and prints the top of the profile.
func profileGatehouse(dir, self string, gs *gatehouseSetup, c *http.Client, o options) error {
	prof := filepath.Join(dir, "gatehouse.cpu.pprof")
	p, err := startInproc(dir, self, gs, prof)
	if err != nil {
		return err
	}
	if err := gs.verify(c, p); err != nil {
		p.stop()
		return err
	}
	load := "wrk"
	var r wrkResult
	if o.profileH2 {
		load = "h2load"
		r, err = runH2load(dir, gs.url(), []string{"Cookie: " + gs.cookie}, o.threads, o.h2Conns, o.h2Streams, o.duration)
	} else {
		r, err = runWrk(gs.url(), []string{"Cookie: " + gs.cookie}, o.threads, o.conns, o.duration, "")
	}
	p.stop()
	if err != nil {
		return err
	}
	fmt.Printf("\nCPU profile of Gatehouse (in-process composition) under %s: %.0f req/s\n", load, r.rps)
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=35", self, prof).CombinedOutput()
	fmt.Println(string(out))
	if err != nil {
		return err
	}
	out, err = exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=40", self, prof).CombinedOutput()
	fmt.Println(string(out))
	if o.keep {
		fmt.Println("profile:", prof)
	}
	return err
}
