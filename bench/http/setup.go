package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// env is one benchmark run: the servers it started, the targets it
// measures and the runs that failed.
type env struct {
	o      options
	dir    string
	self   string
	client *http.Client
	roots  *x509.CertPool
	ports  map[string]int
	procs  []*proc // stopped in reverse order by close
	up     *proc
	gh     *proc
	ngx    *proc
	gs     *gatehouseSetup
	mode   string // "binary" or "in-process"
	// targets are the HTTP/1.1 targets of the small page; ghT and ngxT
	// are Gatehouse's and nginx's among them.
	targets []*target
	ghT     *target
	ngxT    *target
	bareT   *target
	fails   []string
	// bigChecks are the large-body results, for the targets.
	bigChecks []bigCheck
}

func (e *env) close() {
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].stop()
	}
	if !e.o.keep && e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// setup starts the upstream, Dex, Gatehouse, nginx and oauth2-proxy and
// checks that each answers with the upstream's page.
func setup(o options) (*env, error) {
	for _, bin := range []string{"wrk", "h2load", "nginx", o.gatehouse, o.oauth2Proxy, o.dex} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s not found (run make deps and make build): %w", bin, err)
		}
	}
	raiseFileLimit()
	e := &env{o: o, ports: map[string]int{}}
	var err error
	if e.self, err = os.Executable(); err != nil {
		return nil, err
	}
	if e.dir, err = os.MkdirTemp("", "gatehouse-bench-http-"); err != nil {
		return nil, err
	}
	// nginx workers run as nobody and must reach the static page; the
	// secrets inside are 0600 files.
	if err := os.Chmod(e.dir, 0o755); err != nil {
		return e, err
	}
	if o.keep {
		fmt.Println("files in", e.dir)
	}
	for _, n := range []string{"up", "uptls", "gh", "ghadmin", "nginx", "nginxh2", "bare", "o2p", "o2phttp", "dex"} {
		if e.ports[n], err = freePort(); err != nil {
			return e, err
		}
	}
	certFile, keyFile, roots, err := writeCert(e.dir, []string{"localhost", "gate.localhost"})
	if err != nil {
		return e, err
	}
	e.roots = roots
	e.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	dir, ports, client := e.dir, e.ports, e.client

	if e.up, err = startUpstream(dir, ports["up"], ports["uptls"], certFile, keyFile); err != nil {
		return e, err
	}
	e.procs = append(e.procs, e.up)
	upURL := fmt.Sprintf("https://localhost:%d/", ports["uptls"])
	if err := checkBody(client, upURL, nil); err != nil {
		return e, fmt.Errorf("upstream: %w\n%s", err, e.up.tail())
	}

	dex, issuer, err := startDex(dir, o.dex, ports["dex"], certFile, keyFile, []dexClient{
		{ID: "oauth2-proxy", Secret: oauth2ProxyClientSecret, Name: "oauth2-proxy",
			RedirectURIs: []string{fmt.Sprintf("https://localhost:%d/oauth2/callback", ports["o2p"])}},
		{ID: "gatehouse", Secret: "gatehouse-bench-secret", Name: "Gatehouse",
			RedirectURIs: []string{fmt.Sprintf("https://gate.localhost:%d/auth/callback", ports["gh"])}},
	}, client)
	if err != nil {
		return e, err
	}
	e.procs = append(e.procs, dex)

	if e.gs, err = writeGatehouseConfig(dir, ports["gh"], ports["ghadmin"], ports["up"], issuer, certFile, keyFile); err != nil {
		return e, err
	}
	if o.env != "" {
		e.gs.env = strings.Fields(o.env)
	}
	if err := e.gs.mint(context.Background()); err != nil {
		return e, err
	}
	if e.gh, e.mode, err = startGatehouse(dir, o.gatehouse, e.self, e.gs, client, o.inproc); err != nil {
		return e, err
	}
	e.procs = append(e.procs, e.gh)

	if e.ngx, err = startNginxProxy(dir, ports["nginx"], ports["nginxh2"], ports["up"], certFile, keyFile); err != nil {
		return e, err
	}
	e.procs = append(e.procs, e.ngx)
	ngxURL := fmt.Sprintf("https://localhost:%d/", ports["nginx"])
	if err := checkBody(client, ngxURL, nil); err != nil {
		return e, fmt.Errorf("nginx proxy: %w\n%s", err, e.ngx.tail())
	}

	bareProc, err := startBare(dir, e.self, ports["bare"], ports["up"], certFile, keyFile)
	if err != nil {
		return e, err
	}
	e.procs = append(e.procs, bareProc)
	bareURL := fmt.Sprintf("https://localhost:%d/", ports["bare"])
	if err := checkBody(client, bareURL, nil); err != nil {
		return e, fmt.Errorf("bare net/http: %w\n%s", err, bareProc.tail())
	}
	e.bareT = &target{name: bareName, url: bareURL, proc: bareProc, logs: []string{bareProc.log}}

	o2p, err := startOAuth2Proxy(dir, o.oauth2Proxy, ports["o2p"], ports["o2phttp"], ports["up"], issuer, certFile, keyFile)
	if err != nil {
		return e, err
	}
	e.procs = append(e.procs, o2p)
	o2pCookie, err := loginOAuth2Proxy(ports["o2p"], roots)
	if err != nil {
		return e, fmt.Errorf("oauth2-proxy: %w\n%s", err, o2p.tail())
	}
	o2pURL := fmt.Sprintf("https://localhost:%d/", ports["o2p"])

	ghMetrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", ports["ghadmin"])
	e.ghT = &target{name: "gatehouse (" + e.mode + ")", url: e.gs.url(), headers: []string{"Cookie: " + e.gs.cookie}, proc: e.gh,
		statuses: metricsStatuses(client, ghMetrics), goMemory: goMemory(client, ghMetrics), logs: []string{e.gh.log}}
	e.ngxT = &target{name: "nginx", url: ngxURL, proc: e.ngx, statuses: accessLogStatuses(nginxBadLogPath(dir, "nginx-proxy")),
		logs: []string{nginxBadLogPath(dir, "nginx-proxy"), filepath.Join(dir, "nginx-proxy", "logs", "error.log")}}
	e.targets = []*target{
		{name: "upstream direct", url: upURL, proc: e.up, statuses: accessLogStatuses(nginxBadLogPath(dir, "upstream")),
			logs: []string{nginxBadLogPath(dir, "upstream"), filepath.Join(dir, "upstream", "logs", "error.log")}},
		e.ghT,
		e.ngxT,
		e.bareT,
		{name: "oauth2-proxy", url: o2pURL, headers: []string{"Cookie: " + o2pCookie}, proc: o2p, logs: []string{o2p.log}},
	}
	if o.only != "" {
		e.targets = slices.DeleteFunc(e.targets, func(t *target) bool { return !strings.Contains(t.name, o.only) })
	}
	return e, nil
}

// raiseFileLimit lifts this process's open-file limit (inherited by the
// servers it starts) to the hard limit: the idle mode holds 10,000
// connections, each an open file on both ends.
func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// loadavg is /proc/loadavg's first three fields, recorded with every result.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
