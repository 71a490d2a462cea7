package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkResult is one wrk run.
type wrkResult struct {
	rps      float64
	p99      time.Duration
	requests int64
	non2xx   int64  // answers that were not 2xx or 3xx, as the client counted them
	errors   string // socket errors or non-2xx/3xx lines, if any
	// bytes is what the client read (wrk's "Transfer/sec" times the
	// duration is rounded; this is its total line).
	bytes float64
}

// runWrk runs wrk against url with the given headers and parses its
// summary. A non-empty script is passed with -s.
func runWrk(url string, headers []string, threads, conns int, d time.Duration, script string) (wrkResult, error) {
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", d.String(), "--latency", "--timeout", "5s"}
	if script != "" {
		args = append(args, "-s", script)
	}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, url)
	out, err := exec.Command("wrk", args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	return parseWrk(out)
}

func parseWrk(out []byte) (wrkResult, error) {
	var r wrkResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	var errs []string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			r.rps, _ = strconv.ParseFloat(f[1], 64)
		case strings.HasPrefix(line, "99%") && len(f) == 2:
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			r.p99 = d
		case len(f) > 5 && f[1] == "requests" && f[2] == "in":
			r.requests, _ = strconv.ParseInt(f[0], 10, 64)
			r.bytes = parseSize(strings.TrimSuffix(f[4], ","))
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(f) == 5:
			r.non2xx, _ = strconv.ParseInt(f[4], 10, 64)
			errs = append(errs, line)
		case strings.HasPrefix(line, "Socket errors:"):
			errs = append(errs, line)
		}
	}
	r.errors = strings.Join(errs, "; ")
	if r.rps == 0 || r.p99 == 0 || r.requests == 0 {
		return r, fmt.Errorf("cannot parse wrk output:\n%s", out)
	}
	return r, nil
}

// parseWrkDuration parses wrk's "812.00us", "1.23ms", "2.00s".
func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"m", time.Minute}, {"s", time.Second}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("wrk duration %q: %w", s, err)
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("wrk duration %q: unknown unit", s)
}

// writePacingScript writes a wrk script that pauses pause between the
// requests of each connection, so that the offered load is fixed (about
// connections/pause per second) instead of "as fast as the server goes".
func writePacingScript(path string, pause time.Duration) error {
	return os.WriteFile(path, []byte(fmt.Sprintf("function delay()\n  return %d\nend\n", pause.Milliseconds())), 0o644)
}

// parseSize parses wrk's "12.34MB", "1.02GB", "900.00KB", "512B".
func parseSize(s string) float64 {
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f * u.mult
		}
	}
	return 0
}
