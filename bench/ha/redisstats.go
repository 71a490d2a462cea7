package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// cmdStats is Redis's per-command call counts (INFO commandstats), keyed
// by command name in lower case ("get", "evalsha", "client|setname").
type cmdStats map[string]int64

// readCmdStats reads INFO commandstats. The INFO call itself is counted
// by Redis; delta removes it.
func readCmdStats(ctx context.Context, c *redis.Client) (cmdStats, error) {
	s, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	return parseCmdStats(s)
}

// parseCmdStats parses lines like
// "cmdstat_get:calls=12,usec=30,usec_per_call=2.50,rejected_calls=0,failed_calls=0".
func parseCmdStats(info string) (cmdStats, error) {
	st := cmdStats{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if k != "calls" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("commandstats line %q: %w", line, err)
			}
			st[strings.TrimPrefix(name, "cmdstat_")] = n
		}
	}
	return st, nil
}

// delta returns after minus before, without the bench's own calls
// (INFO, DBSIZE), and with commands that did not run left out.
func delta(before, after cmdStats) cmdStats {
	d := cmdStats{}
	for k, v := range after {
		if k == "info" || k == "dbsize" {
			continue
		}
		if n := v - before[k]; n > 0 {
			d[k] = n
		}
	}
	return d
}

// total is the sum of all calls.
func (s cmdStats) total() int64 {
	var n int64
	for _, v := range s {
		n += v
	}
	return n
}

// perUnit formats the calls per unit of work (per request, per session),
// busiest command first, after subtracting what the idle replicas do in
// the same time (idle is per second, secs the phase's length).
func (s cmdStats) perUnit(units int64, idle cmdStats, idleSecs, secs float64) string {
	if units == 0 {
		return "no units"
	}
	type row struct {
		name     string
		raw, net float64
	}
	var rows []row
	var rawTotal, netTotal float64
	for k, v := range s {
		bg := float64(idle[k]) / idleSecs * secs
		r := row{k, float64(v) / float64(units), (float64(v) - bg) / float64(units)}
		if r.net < 0 {
			r.net = 0
		}
		rows = append(rows, r)
		rawTotal += r.raw
		netTotal += r.net
	}
	sort.Slice(rows, func(i, j int) bool {
		return rows[i].raw > rows[j].raw || rows[i].raw == rows[j].raw && rows[i].name < rows[j].name
	})
	var b strings.Builder
	fmt.Fprintf(&b, "    %-22s %10s %12s\n", "command", "per unit", "minus idle")
	fmt.Fprintf(&b, "    %-22s %10.3f %12.3f\n", "TOTAL", rawTotal, netTotal)
	for _, r := range rows {
		fmt.Fprintf(&b, "    %-22s %10.3f %12.3f\n", r.name, r.raw, r.net)
	}
	return b.String()
}
