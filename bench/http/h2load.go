package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// runH2load runs h2load (nghttp2-client) for d against url with conns
// connections of streams concurrent streams each, and returns its summary
// in wrk's terms; p99 comes from h2load's per-request log.
func runH2load(dir, url string, headers []string, threads, conns, streams int, d time.Duration) (wrkResult, error) {
	logFile := filepath.Join(dir, "h2load.log")
	defer os.Remove(logFile)
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-m", strconv.Itoa(streams),
		"-D", strconv.Itoa(int(d.Seconds())), "--warm-up-time", "1", "--log-file", logFile}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, url)
	out, err := exec.Command("h2load", args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("h2load: %v\n%s", err, out)
	}
	r, err := parseH2load(out)
	if err != nil {
		return r, err
	}
	if r.p99, err = h2loadP99(logFile); err != nil {
		return r, err
	}
	return r, nil
}

func parseH2load(out []byte) (wrkResult, error) {
	var r wrkResult
	var errs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(strings.NewReplacer(",", "").Replace(line))
		switch {
		case strings.HasPrefix(line, "finished in") && len(f) >= 5:
			r.rps, _ = strconv.ParseFloat(f[3], 64)
		case strings.HasPrefix(line, "requests:") && len(f) >= 15:
			// requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout
			r.requests, _ = strconv.ParseInt(f[5], 10, 64)
			if f[9] != "0" || f[11] != "0" || f[13] != "0" {
				errs = append(errs, line)
			}
		case strings.HasPrefix(line, "status codes:") && len(f) >= 10:
			n4, _ := strconv.ParseInt(f[6], 10, 64)
			n5, _ := strconv.ParseInt(f[8], 10, 64)
			if n4+n5 > 0 {
				r.non2xx = n4 + n5
				errs = append(errs, line)
			}
		case strings.HasPrefix(line, "traffic:") && len(f) >= 3:
			r.bytes, _ = strconv.ParseFloat(strings.Trim(f[2], "()"), 64)
		}
	}
	r.errors = strings.Join(errs, "; ")
	if r.rps == 0 || r.requests == 0 {
		return r, fmt.Errorf("cannot parse h2load output:\n%s", out)
	}
	return r, nil
}

// h2loadP99 is the 99th percentile of the request times in an h2load
// --log-file (start µs, status, duration µs per line).
func h2loadP99(path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var us []int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		col := strings.Fields(sc.Text())
		if len(col) < 3 {
			continue
		}
		if v, err := strconv.ParseInt(col[2], 10, 64); err == nil {
			us = append(us, v)
		}
	}
	if len(us) == 0 {
		return 0, fmt.Errorf("h2load log %s is empty", path)
	}
	slices.Sort(us)
	return time.Duration(us[len(us)*99/100]) * time.Microsecond, sc.Err()
}

// runH2 measures Gatehouse and nginx (http2 on its second listener) over
// HTTP/2 with h2load, in interleaved rounds, and checks the same three
// ratios as HTTP/1.1.
func (e *env) runH2() error {
	o := e.o
	ngx := *e.ngxT
	ngx.url = fmt.Sprintf("https://localhost:%d/", e.ports["nginxh2"])
	gh := *e.ghT
	fl := *e.bareT
	ngx.results, gh.results, fl.results = nil, nil, nil
	targets := []*target{&gh, &ngx, &fl}
	fmt.Printf("\nHTTP/2: h2load -t%d -c%d -m%d -D %s; %d interleaved rounds; load %s\n",
		o.threads, o.h2Conns, o.h2Streams, o.duration, o.rounds, loadavg())
	for round := 1; round <= o.rounds; round++ {
		for _, t := range targets {
			s, err := e.measure(t, "h2 round "+strconv.Itoa(round), func() (wrkResult, error) {
				return runH2load(e.dir, t.url, t.headers, o.threads, o.h2Conns, o.h2Streams, o.duration)
			})
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, t.name, err)
			}
			t.results = append(t.results, s)
			printSample("h2", round, t.name, s)
		}
	}
	r := table(fmt.Sprintf("HTTP/2 (h2load, %d connections x %d streams): medians of %d rounds", o.h2Conns, o.h2Streams, o.rounds),
		targets, func(t *target) []sample { return t.results })
	fmt.Println("\nHTTP/2 targets:")
	checkRatios("HTTP/2", r.ngx, r.gh)
	bareLine("HTTP/2", r)
	return nil
}
