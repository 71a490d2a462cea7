package main

import (
	"fmt"
	"io"
	"sort"
	"time"
)

// report prints every phase: throughput, latency, errors, Redis calls per
// unit (raw and minus what the idle replicas do meanwhile) and CPU.
func report(w io.Writer, phases []phase, logErrs []string, o opts) {
	fmt.Fprintf(w, "\n== bench-ha %s (phases %s; two replicas, one redis-server, loopback) ==\n", time.Now().UTC().Format(time.RFC3339), o.phase)
	var idle phase
	for _, p := range phases {
		if p.unit == "second" {
			if idle.secs == 0 {
				idle = p // the baseline: the idle phase before the load
			}
			fmt.Fprintf(w, "\n%s: %.1fs, Redis calls by the idle replicas: %.1f/s (%d keys in Redis)\n", p.name, p.secs, float64(p.redis.total())/p.secs, p.keys)
			fmt.Fprint(w, p.redis.perUnit(int64(p.secs*1000)/1000, cmdStats{}, 1, 0))
			continue
		}
		n := p.t.count()
		fmt.Fprintf(w, "\n%s: %.1fs\n", p.name, p.secs)
		fmt.Fprintf(w, "    %d %ss ok (replica A %d, B %d): %.1f/s", n, p.unit, p.t.perRep[0], p.t.perRep[1], float64(n)/p.secs)
		if p.t.bytes > 0 {
			fmt.Fprintf(w, ", %.1f MB/s read through the gateway", float64(p.t.bytes)/p.secs/1e6)
		}
		fmt.Fprintf(w, "\n    latency p50 %s, p99 %s, max %s\n", round(p.t.percentile(50)), round(p.t.percentile(99)), round(p.t.percentile(100)))
		fmt.Fprint(w, p.t.errorReport())
		fmt.Fprintf(w, "    Redis calls per %s (%d calls in all):\n", p.unit, p.redis.total())
		fmt.Fprint(w, p.redis.perUnit(n, idle.redis, idle.secs, p.secs))
		if p.secs >= 2 { // shorter phases are a few clock ticks
			fmt.Fprintf(w, "    CPU seconds per second of phase:%s\n", cpuLine(p))
		}
	}
	if len(logErrs) > 0 {
		fmt.Fprintf(w, "\nreplica ERROR log lines: %d\n", len(logErrs))
		for i, l := range logErrs {
			if i == 20 {
				fmt.Fprintf(w, "  ... %d more\n", len(logErrs)-i)
				break
			}
			fmt.Fprintln(w, "  "+l)
		}
	} else {
		fmt.Fprintln(w, "\nreplica ERROR log lines: none")
	}
}

func cpuLine(p phase) string {
	names := make([]string, 0, len(p.cpu))
	for k := range p.cpu {
		names = append(names, k)
	}
	sort.Strings(names)
	s := ""
	for _, k := range names {
		s += fmt.Sprintf(" %s %.2f;", k, p.cpu[k]/p.secs)
	}
	return s
}

func round(d time.Duration) time.Duration {
	switch {
	case d > 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
