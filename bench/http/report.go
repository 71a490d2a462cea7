package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// medians of one target's samples.
type medians struct {
	rps float64
	p99 time.Duration
	cpu time.Duration
}

func medianOf(samples []sample) medians {
	var rps []float64
	var p99, cpu []time.Duration
	for _, s := range samples {
		rps = append(rps, s.rps)
		p99 = append(p99, s.p99)
		cpu = append(cpu, s.cpuPerReq)
	}
	slices.Sort(rps)
	slices.Sort(p99)
	slices.Sort(cpu)
	return medians{rps: rps[len(rps)/2], p99: p99[len(p99)/2], cpu: cpu[len(cpu)/2]}
}

// ranked are the medians table picks out of its targets; a target that
// was not measured has zero medians.
type ranked struct {
	ngx, gh, o2p, bare medians
}

// table prints the medians of each target's samples and their ratios to
// nginx's, and returns the medians of nginx, Gatehouse, oauth2-proxy and
// the bare net/http proxy.
func table(title string, targets []*target, samples func(*target) []sample) ranked {
	var r ranked
	m := map[string]medians{}
	for _, t := range targets {
		m[t.name] = medianOf(samples(t))
		switch {
		case t.name == "nginx":
			r.ngx = m[t.name]
		case t.name == "oauth2-proxy":
			r.o2p = m[t.name]
		case t.name == bareName:
			r.bare = m[t.name]
		case strings.HasPrefix(t.name, "gatehouse"):
			r.gh = m[t.name]
		}
	}
	fmt.Printf("\n%s\n", title)
	fmt.Printf("%-26s %10s %10s %12s | %10s %10s %10s\n", "", "req/s", "p99", "CPU µs/req", "rps/nginx", "p99/nginx", "CPU/nginx")
	for _, t := range targets {
		x := m[t.name]
		fmt.Printf("%-26s %10.0f %10s %12.1f | %9.2fx %9.2fx %9.2fx\n", t.name, x.rps, x.p99.Round(time.Microsecond),
			us(x.cpu), x.rps/r.ngx.rps, float64(x.p99)/float64(r.ngx.p99), float64(x.cpu)/float64(r.ngx.cpu))
	}
	return r
}

// bareLine prints Gatehouse beside the bare net/http proxy: the share of its
// cost that is its own work rather than the Go HTTP stack's.
func bareLine(label string, r ranked) {
	if r.bare.rps == 0 || r.gh.rps == 0 {
		return
	}
	fmt.Printf("  (reported) %s gatehouse / bare net/http: req/s %.2fx, CPU/req %.2fx, p99 %.2fx; bare / nginx: req/s %.2fx, CPU/req %.2fx\n",
		label, r.gh.rps/r.bare.rps, float64(r.gh.cpu)/float64(r.bare.cpu), float64(r.gh.p99)/float64(r.bare.p99),
		r.bare.rps/r.ngx.rps, float64(r.bare.cpu)/float64(r.ngx.cpu))
}

// report prints the HTTP/1.1 tables and checks the targets.
func report(targets []*target, o options) {
	sat := table(fmt.Sprintf("HTTP/1.1 saturated (wrk as fast as it can): medians of %d rounds; CPU is the server's process tree,"+
		" for \"upstream direct\" the upstream nginx itself", o.rounds), targets, func(t *target) []sample { return t.results })
	var paced ranked
	if o.pause > 0 {
		paced = table(fmt.Sprintf("HTTP/1.1 fixed offered load (%d connections, %s pause between requests): medians of %d rounds",
			o.conns, o.pause, o.rounds), targets, func(t *target) []sample { return t.paced })
	}
	fmt.Println("\nHTTP/1.1 targets:")
	checkRatios("HTTP/1.1", sat.ngx, sat.gh)
	if o.pause > 0 {
		check(float64(paced.gh.p99) <= 1.5*float64(paced.ngx.p99), "HTTP/1.1 gatehouse p99 <= 1.5x nginx (fixed load): %.2fx",
			float64(paced.gh.p99)/float64(paced.ngx.p99))
		check(float64(paced.gh.cpu) <= 1.4*float64(paced.ngx.cpu), "HTTP/1.1 gatehouse CPU/req <= 1.4x nginx (fixed load): %.2fx",
			float64(paced.gh.cpu)/float64(paced.ngx.cpu))
	}
	if sat.o2p.rps > 0 {
		check(sat.gh.rps >= 3*sat.o2p.rps, "HTTP/1.1 gatehouse rps >= 3x oauth2-proxy: %.2fx", sat.gh.rps/sat.o2p.rps)
	}
	bareLine("HTTP/1.1 saturated", sat)
	if o.pause > 0 {
		bareLine("HTTP/1.1 fixed load", paced)
	}
}

// checkRatios checks issue 11's three ratios to nginx, saturated.
func checkRatios(label string, ngx, gh medians) {
	check(gh.rps >= 0.8*ngx.rps, "%s gatehouse req/s >= 0.8x nginx: %.2fx", label, gh.rps/ngx.rps)
	check(float64(gh.cpu) <= 1.4*float64(ngx.cpu), "%s gatehouse CPU/req <= 1.4x nginx: %.2fx", label, float64(gh.cpu)/float64(ngx.cpu))
	check(float64(gh.p99) <= 1.5*float64(ngx.p99), "%s gatehouse p99 <= 1.5x nginx (saturated): %.2fx", label, float64(gh.p99)/float64(ngx.p99))
}

// check prints one target line, ok or MISS.
func check(ok bool, format string, args ...any) {
	mark := "MISS"
	if ok {
		mark = "ok  "
	}
	fmt.Printf("  %s "+format+"\n", append([]any{mark}, args...)...)
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
