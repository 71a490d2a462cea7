package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cpuOrder lists the processes in path order.
var cpuOrder = []string{"client", "jump", "gatehouse", bareRole, "target"}

func cpuLine(p path, t transfer) string {
	parts, total := cpuParts(t.cpu)
	return fmt.Sprintf("CPU-s/GiB: %s (total %.2f)", strings.Join(parts, ", "), total)
}

// cpuParts returns "role seconds" for the roles in cpu, in path order,
// and their total.
func cpuParts(cpu map[string]float64) ([]string, float64) {
	var parts []string
	total := 0.0
	for _, k := range cpuOrder {
		if v, ok := cpu[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, v))
			total += v
		}
	}
	return parts, total
}

// cpuCells returns the table cells of every role in path order ("-" where
// the path has none) and their total.
func cpuCells(cpu map[string]float64) ([]any, float64) {
	var cells []any
	total := 0.0
	for _, k := range cpuOrder {
		v, ok := cpu[k]
		if !ok {
			cells = append(cells, "-")
			continue
		}
		total += v
		cells = append(cells, fmt.Sprintf("%.2f", v))
	}
	return cells, total
}

// summary is the medians of one path.
type summary struct {
	mibps float64
	cpu   map[string]float64
	setup float64 // seconds
}

func summarize(ts []transfer, setup []float64) summary {
	s := summary{cpu: map[string]float64{}, setup: median(setup)}
	var m []float64
	per := map[string][]float64{}
	for _, t := range ts {
		m = append(m, t.mibps)
		for k, v := range t.cpu {
			per[k] = append(per[k], v)
		}
	}
	s.mibps = median(m)
	for k, v := range per {
		s.cpu[k] = median(v)
	}
	return s
}

// report prints the medians of the classic mode and the ratios, and
// returns the summaries by path name.
func report(ps []path, res map[string][]transfer, setup map[string][]float64) map[string]summary {
	sum := map[string]summary{}
	fmt.Println("\nMedians (MiB/s; CPU seconds per GiB by process; connection setup by hyperfine):")
	fmt.Printf("%-22s %9s %8s %8s %10s %8s %8s %8s %10s\n", "path", "MiB/s", "client", "jump", "gatehouse", bareRole, "target", "total", "setup ms")
	for _, p := range ps {
		s := summarize(res[p.name], setup[p.name])
		sum[p.name] = s
		cells, total := cpuCells(s.cpu)
		fmt.Printf("%-22s %9.1f %8s %8s %10s %8s %8s %8.2f %10.1f\n", append(append([]any{p.name, s.mibps}, cells...), total, s.setup*1000)...)
	}
	gh := sum["Gatehouse"]
	fmt.Println("\nRatios (Gatehouse negotiates aes128-gcm with OpenSSH's default client settings):")
	for _, base := range []string{"direct aes128-gcm", "direct default", "ProxyJump aes128-gcm", "ProxyJump default"} {
		if b, ok := sum[base]; ok {
			fmt.Printf("  Gatehouse / %-22s throughput %.2fx  setup %.2fx\n", base, ratio(gh.mibps, b.mibps), ratio(gh.setup, b.setup))
		}
	}
	if f, ok := sum[barePath]; ok {
		fmt.Printf("  (reported) Gatehouse / %s: throughput %.2fx, relay CPU %.2fx (%.2f against %.2f CPU-s/GiB)\n",
			barePath, ratio(gh.mibps, f.mibps), ratio(gh.cpu["gatehouse"], f.cpu[bareRole]), gh.cpu["gatehouse"], f.cpu[bareRole])
		if d, ok := sum["direct aes128-gcm"]; ok {
			fmt.Printf("  (reported) %s / direct aes128-gcm: throughput %.2fx\n", barePath, ratio(f.mibps, d.mibps))
		}
	}
	return sum
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// check prints one target as an ok or MISS line.
func check(ok bool, format string, args ...any) {
	mark := "MISS"
	if ok {
		mark = "ok  "
	}
	fmt.Printf("  [%s] %s\n", mark, fmt.Sprintf(format, args...))
}

// reportTargets prints the tables of every mode that ran and the targets
// of issue 11 they measure.
func reportTargets(ps []path, res map[string][]transfer, setup map[string][]float64,
	idleRes *idle, manyRes map[string][]many, conns []int, manyPaths []path) {
	var sum map[string]summary
	if ps != nil {
		sum = report(ps, res, setup)
	}
	if manyRes != nil {
		growthTable(manyRes, conns, manyPaths)
	}
	fmt.Println("\nTargets (issue 11):")
	if sum != nil {
		gh := sum["Gatehouse"]
		if d, ok := sum["direct aes128-gcm"]; ok {
			check(ratio(gh.mibps, d.mibps) >= 0.8, "classic: throughput %.2fx direct (same cipher) >= 0.8x", ratio(gh.mibps, d.mibps))
			if gh.setup > 0 {
				check(ratio(gh.setup, d.setup) <= 1.25, "classic: setup %.2fx direct <= 1.25x", ratio(gh.setup, d.setup))
			}
		}
		if j, ok := sum["ProxyJump aes128-gcm"]; ok {
			check(ratio(gh.mibps, j.mibps) >= 1.6, "classic: throughput %.2fx ProxyJump (same cipher) >= 1.6x", ratio(gh.mibps, j.mibps))
		}
		check(gh.cpu["gatehouse"] <= 1.5, "classic: relay CPU %.2f CPU-s/GiB <= 1.5 (1 session)", gh.cpu["gatehouse"])
	}
	if manyRes != nil {
		top := conns[len(conns)-1]
		scale := ""
		if top < 100 || manyRes["Gatehouse/"+fmt.Sprint(top)][0].n < 100 {
			scale = fmt.Sprintf(" [SCALED DOWN: %d sessions, target is 100]", top)
		}
		gh, d := manyMedian(manyRes, "Gatehouse", top), manyMedian(manyRes, "direct aes128-gcm", top)
		if d.mibps > 0 {
			check(ratio(gh.mibps, d.mibps) >= 0.8, "many: %d sessions aggregate %.0f MiB/s = %.2fx direct (same cipher) >= 0.8x%s",
				top, gh.mibps, ratio(gh.mibps, d.mibps), scale)
		}
		if j := manyMedian(manyRes, "ProxyJump aes128-gcm", top); j.mibps > 0 {
			check(ratio(gh.mibps, j.mibps) >= 1.6, "many: %d sessions %.2fx ProxyJump (same cipher) >= 1.6x%s", top, ratio(gh.mibps, j.mibps), scale)
		}
		for _, n := range conns {
			g := manyMedian(manyRes, "Gatehouse", n)
			check(g.cpu["gatehouse"] <= 1.5, "many: relay CPU %.2f CPU-s/GiB at %d sessions <= 1.5", g.cpu["gatehouse"], n)
		}
	}
	if idleRes != nil {
		r := *idleRes
		scale := ""
		if r.n < 1000 {
			scale = fmt.Sprintf(" [SCALED DOWN: %d sessions, target is 1000]", r.n)
		}
		check(r.perSession() <= 128<<10, "idle: Gatehouse RSS %.1f KiB per idle shell (client and target leg) <= 128 KiB%s", r.perSession()/1024, scale)
		g, d := percentile(r.probes["Gatehouse"], 99), percentile(r.probes["direct aes128-gcm"], 99)
		if d > 0 {
			check(ratio(g.Seconds(), d.Seconds()) <= 1.25, "idle: setup p99 %.0f ms with %d held = %.2fx direct's p99 %.0f ms <= 1.25x%s",
				ms(g), r.n, ratio(g.Seconds(), d.Seconds()), ms(d), scale)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// manyMedian returns the medians of the concurrent runs of one path and
// session count.
func manyMedian(res map[string][]many, name string, n int) many {
	runs := res[name+"/"+fmt.Sprint(n)]
	if len(runs) == 0 {
		return many{cpu: map[string]float64{}}
	}
	ts := make([]transfer, len(runs))
	for i, r := range runs {
		ts[i] = transfer{mibps: r.mibps, cpu: r.cpu}
	}
	s := summarize(ts, nil)
	return many{n: runs[0].n, mibps: s.mibps, cpu: s.cpu}
}

// growthTable prints how throughput and CPU per GiB grow with the number
// of concurrent sessions, Gatehouse beside direct OpenSSH and ProxyJump.
func growthTable(res map[string][]many, conns []int, ps []path) {
	fmt.Println("\nCost growth (medians; aggregate MiB/s, CPU seconds per GiB moved):")
	fmt.Printf("%8s  %-22s %9s %8s %8s %10s %8s %8s\n", "sessions", "path", "MiB/s", "client", "jump", "gatehouse", "target", "total")
	for _, n := range conns {
		for _, p := range ps {
			m := manyMedian(res, p.name, n)
			cells, total := cpuCells(m.cpu)
			fmt.Printf("%8d  %-22s %9.1f %8s %8s %10s %8s %8.2f\n", append(append([]any{n, p.name, m.mibps}, cells...), total)...)
		}
	}
}

// reportIdle prints the idle mode's memory and setup numbers.
func reportIdle(r idle) {
	fmt.Printf("  opened %d sessions in %.1fs\n", r.n, r.open.Seconds())
	fmt.Printf("  Gatehouse RSS: %.1f MiB before, %.1f MiB held, %.1f MiB after close: %.1f KiB per session\n",
		mib(r.rssBase), mib(r.rssHeld), mib(r.rssAfter), r.perSession()/1024)
	for _, k := range metricNames {
		if b, ok := r.metBase[k]; ok {
			fmt.Printf("  %s: %.0f -> %.0f (%.1f per session)\n", k, b, r.metHeld[k], (r.metHeld[k]-b)/float64(r.n))
		}
	}
	for _, name := range []string{"direct aes128-gcm", "Gatehouse"} {
		if d := r.probes[name]; len(d) > 0 {
			fmt.Printf("  setup while held, %-18s p50 %.0f ms  p99 %.0f ms  (%d runs of `ssh ... true`)\n",
				name, ms(percentile(d, 50)), ms(percentile(d, 99)), len(d))
		}
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
