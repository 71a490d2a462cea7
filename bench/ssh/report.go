package main

import (
	"fmt"
	"sort"
	"strings"
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
var cpuOrder = []string{"client", "jump", "gatehouse", "target"}

func cpuLine(p path, t transfer) string {
	var parts []string
	total := 0.0
	for _, k := range cpuOrder {
		if v, ok := t.cpu[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, v))
			total += v
		}
	}
	return fmt.Sprintf("CPU-s/GiB: %s (total %.2f)", strings.Join(parts, ", "), total)
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

func report(ps []path, res map[string][]transfer, setup map[string][]float64) {
	sum := map[string]summary{}
	fmt.Println("\nMedians (MiB/s; CPU seconds per GiB by process; connection setup by hyperfine):")
	fmt.Printf("%-22s %9s %8s %8s %10s %8s %8s %10s\n", "path", "MiB/s", "client", "jump", "gatehouse", "target", "total", "setup ms")
	for _, p := range ps {
		s := summarize(res[p.name], setup[p.name])
		sum[p.name] = s
		total := 0.0
		cell := func(k string) string {
			v, ok := s.cpu[k]
			if !ok {
				return "-"
			}
			total += v
			return fmt.Sprintf("%.2f", v)
		}
		c, j, g, t := cell("client"), cell("jump"), cell("gatehouse"), cell("target")
		fmt.Printf("%-22s %9.1f %8s %8s %10s %8s %8.2f %10.1f\n", p.name, s.mibps, c, j, g, t, total, s.setup*1000)
	}
	gh := sum["Gatehouse"]
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	fmt.Println("\nRatios (Gatehouse negotiates aes128-gcm with OpenSSH's default client settings):")
	for _, base := range []string{"direct aes128-gcm", "direct default", "ProxyJump aes128-gcm", "ProxyJump default"} {
		b := sum[base]
		fmt.Printf("  Gatehouse / %-22s throughput %.2fx  setup %.2fx\n", base, ratio(gh.mibps, b.mibps), ratio(gh.setup, b.setup))
	}
	fmt.Println("\nTargets (issue 4):")
	check := func(ok bool, format string, args ...any) {
		mark := "MISS"
		if ok {
			mark = "ok  "
		}
		fmt.Printf("  [%s] %s\n", mark, fmt.Sprintf(format, args...))
	}
	relay := gh.cpu["gatehouse"]
	check(relay <= 1.5, "relay CPU %.2f CPU-s/GiB <= 1.5", relay)
	r := ratio(gh.mibps, sum["direct aes128-gcm"].mibps)
	check(r >= 0.7, "throughput %.2fx direct (same cipher) >= 0.7x", r)
	r = ratio(gh.mibps, sum["ProxyJump aes128-gcm"].mibps)
	check(r >= 1.5, "throughput %.2fx ProxyJump (same cipher) >= 1.5x", r)
	if gh.setup > 0 {
		r = ratio(gh.setup, sum["direct aes128-gcm"].setup)
		check(r <= 1.25, "setup %.2fx direct <= 1.25x", r)
	}
}
