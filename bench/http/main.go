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
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "inproc" {
		os.Exit(runInproc(os.Args[2:]))
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
	name    string
	url     string
	headers []string
	proc    *proc // whose CPU is counted
	results []sample
	paced   []sample // at a fixed offered load
}

// sample is one measured run.
type sample struct {
	wrkResult
	cpuPerReq time.Duration
}

func bench(o options) (err error) {
	for _, bin := range []string{"wrk", "nginx", o.gatehouse, o.oauth2Proxy, o.dex} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found (run make deps and make build): %w", bin, err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "gatehouse-bench-http-")
	if err != nil {
		return err
	}
	// nginx workers run as nobody and must reach the static page; the
	// secrets inside are 0600 files.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if o.keep {
		fmt.Println("files in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	var procs []*proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	ports := map[string]int{}
	for _, n := range []string{"up", "uptls", "gh", "ghadmin", "nginx", "o2p", "o2phttp", "dex"} {
		if ports[n], err = freePort(); err != nil {
			return err
		}
	}
	certFile, keyFile, roots, err := writeCert(dir, []string{"localhost", "gate.localhost"})
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}

	up, err := startUpstream(dir, ports["up"], ports["uptls"], certFile, keyFile)
	if err != nil {
		return err
	}
	procs = append(procs, up)
	upURL := fmt.Sprintf("https://localhost:%d/", ports["uptls"])
	if err := checkBody(client, upURL, nil); err != nil {
		return fmt.Errorf("upstream: %w\n%s", err, up.tail())
	}

	dex, issuer, err := startDex(dir, o.dex, ports["dex"], certFile, keyFile, []dexClient{
		{ID: "oauth2-proxy", Secret: oauth2ProxyClientSecret, Name: "oauth2-proxy",
			RedirectURIs: []string{fmt.Sprintf("https://localhost:%d/oauth2/callback", ports["o2p"])}},
		{ID: "gatehouse", Secret: "gatehouse-bench-secret", Name: "Gatehouse",
			RedirectURIs: []string{fmt.Sprintf("https://gate.localhost:%d/auth/callback", ports["gh"])}},
	}, client)
	if err != nil {
		return err
	}
	procs = append(procs, dex)

	gs, err := writeGatehouseConfig(dir, ports["gh"], ports["ghadmin"], ports["up"], issuer, certFile, keyFile)
	if err != nil {
		return err
	}
	if o.env != "" {
		gs.env = []string{o.env}
	}
	if err := gs.mint(context.Background()); err != nil {
		return err
	}
	gh, mode, err := startGatehouse(dir, o.gatehouse, self, gs, client, o.inproc)
	if err != nil {
		return err
	}
	procs = append(procs, gh)

	ngx, err := startNginxProxy(dir, ports["nginx"], ports["up"], certFile, keyFile)
	if err != nil {
		return err
	}
	procs = append(procs, ngx)
	ngxURL := fmt.Sprintf("https://localhost:%d/", ports["nginx"])
	if err := checkBody(client, ngxURL, nil); err != nil {
		return fmt.Errorf("nginx proxy: %w\n%s", err, ngx.tail())
	}

	o2p, err := startOAuth2Proxy(dir, o.oauth2Proxy, ports["o2p"], ports["o2phttp"], ports["up"], issuer, certFile, keyFile)
	if err != nil {
		return err
	}
	procs = append(procs, o2p)
	o2pCookie, err := loginOAuth2Proxy(ports["o2p"], roots)
	if err != nil {
		return fmt.Errorf("oauth2-proxy: %w\n%s", err, o2p.tail())
	}
	o2pURL := fmt.Sprintf("https://localhost:%d/", ports["o2p"])

	targets := []*target{
		{name: "upstream direct", url: upURL, proc: up},
		{name: "gatehouse (" + mode + ")", url: gs.url(), headers: []string{"Cookie: " + gs.cookie}, proc: gh},
		{name: "nginx", url: ngxURL, proc: ngx},
		{name: "oauth2-proxy", url: o2pURL, headers: []string{"Cookie: " + o2pCookie}, proc: o2p},
	}
	if o.only != "" {
		targets = slices.DeleteFunc(targets, func(t *target) bool { return !strings.Contains(t.name, o.only) })
	}
	fmt.Printf("wrk -t%d -c%d -d%s --latency over HTTPS keep-alive; %d interleaved rounds; upstream: nginx static page (%d bytes)\n",
		o.threads, o.conns, o.duration, o.rounds, len(upstreamBody))
	for _, t := range targets {
		if err := checkBody(client, t.url, t.headers); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if _, err := runWrk(t.url, t.headers, o.threads, o.conns, o.warmup, ""); err != nil {
			return fmt.Errorf("%s warm-up: %w", t.name, err)
		}
	}
	for round := 1; round <= o.rounds; round++ {
		for _, t := range targets {
			s, err := measure(client, t, o, "")
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, t.name, err)
			}
			t.results = append(t.results, s)
			printSample("round", round, t.name, s)
		}
	}
	if o.pause > 0 {
		script := filepath.Join(dir, "pace.lua")
		if err := writePacingScript(script, o.pause); err != nil {
			return err
		}
		fmt.Printf("\nfixed offered load: %d connections, each pausing %s between requests (about %.0f req/s at most)\n",
			o.conns, o.pause, float64(o.conns)/o.pause.Seconds())
		for round := 1; round <= o.rounds; round++ {
			for _, t := range targets {
				s, err := measure(client, t, o, script)
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

	if o.profile {
		// The profile needs a process of our own: stop the measured one
		// (the store allows one holder) and run the in-process composition.
		gh.stop()
		if err := profileGatehouse(dir, self, gs, client, o); err != nil {
			return fmt.Errorf("profile: %w", err)
		}
	}
	return nil
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

// measure runs wrk once against t, counting the CPU time of t's process
// tree, and checks before and after that t still answers with the
// upstream's page (so no run measures redirects or errors).
func measure(c *http.Client, t *target, o options, script string) (sample, error) {
	if err := checkBody(c, t.url, t.headers); err != nil {
		return sample{}, err
	}
	pid := t.proc.cmd.Process.Pid
	before, err := cpuTicks(pid)
	if err != nil {
		return sample{}, err
	}
	r, err := runWrk(t.url, t.headers, o.threads, o.conns, o.duration, script)
	if err != nil {
		return sample{}, err
	}
	after, err := cpuTicks(pid)
	if err != nil {
		return sample{}, err
	}
	if err := checkBody(c, t.url, t.headers); err != nil {
		return sample{}, errors.Join(errors.New("after the run"), err)
	}
	cpu := time.Duration(after-before) * time.Second / clockTicks
	return sample{wrkResult: r, cpuPerReq: cpu / time.Duration(r.requests)}, nil
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
	r, err := runWrk(gs.url(), []string{"Cookie: " + gs.cookie}, o.threads, o.conns, o.duration, "")
	p.stop()
	if err != nil {
		return err
	}
	fmt.Printf("\nCPU profile of Gatehouse (in-process composition) under wrk: %.0f req/s\n", r.rps)
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
