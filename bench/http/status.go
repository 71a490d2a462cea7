package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
)

// A run must see only 2xx and 3xx answers. wrk and h2load count the
// others but do not say which they were, so every server keeps its own
// count: Gatehouse in its Prometheus metrics (gatehouse_http_requests_total
// by code, on the admin listener), nginx in an access log that records
// only non-2xx/3xx answers. A failed run prints the statuses and the
// server's log lines written during it.

// statusCounts maps an HTTP status to how many answers had it.
type statusCounts map[int]int64

// clientClosed is the status nginx and Gatehouse count for a request
// whose client hung up before the answer (proxy.StatusClientClosed):
// wrk and h2load stop with requests in flight, so every run ends with a
// few. No client receives it; the clients' own counts catch any error
// they did receive.
const clientClosed = 499

// bad returns the counts of statuses other than 2xx, 3xx and
// clientClosed that grew from before to c.
func (c statusCounts) bad(before statusCounts) statusCounts {
	out := statusCounts{}
	for code, n := range c {
		if code >= 200 && code < 400 || code == clientClosed {
			continue
		}
		if d := n - before[code]; d > 0 {
			out[code] = d
		}
	}
	return out
}

func (c statusCounts) String() string {
	codes := make([]int, 0, len(c))
	for code := range c {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	var parts []string
	for _, code := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", c[code], code))
	}
	return strings.Join(parts, ", ")
}

// statusSource reports a server's answers so far by status.
type statusSource func() (statusCounts, error)

// metricsStatuses reads gatehouse_http_requests_total from Gatehouse's
// admin /metrics.
func metricsStatuses(c *http.Client, url string) statusSource {
	return func() (statusCounts, error) {
		res, err := c.Get(url)
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: %s", url, res.Status)
		}
		return parseRequestMetrics(res.Body)
	}
}

// parseRequestMetrics sums gatehouse_http_requests_total by its code
// label (Prometheus text format).
func parseRequestMetrics(r io.Reader) (statusCounts, error) {
	out := statusCounts{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "gatehouse_http_requests_total{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `code="`)
		code, rest, ok := strings.Cut(rest, `"`)
		if !ok {
			continue
		}
		_, val, _ := strings.Cut(rest, "} ")
		n, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		c, err2 := strconv.Atoi(code)
		if err != nil || err2 != nil {
			return nil, fmt.Errorf("metrics line %q", line)
		}
		out[c] += int64(n)
	}
	return out, sc.Err()
}

// nginxBadLog is the access log directive that records only the answers
// that are not 2xx or 3xx ($bad_status is set by nginxBadMap), one status
// per line first.
func nginxBadLog(path string) string {
	return fmt.Sprintf(`    log_format bad '$status $request_time "$request" upstream=$upstream_status';
    access_log %s bad if=$bad_status;`, path)
}

// nginxBadMap flags the statuses nginxBadLog records.
const nginxBadMap = `    map $status $bad_status { ~^[23] 0; default 1; }`

// accessLogStatuses counts the lines of an nginxBadLog file by status.
func accessLogStatuses(path string) statusSource {
	return func() (statusCounts, error) {
		out := statusCounts{}
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			code, _, _ := strings.Cut(sc.Text(), " ")
			if c, err := strconv.Atoi(code); err == nil {
				out[c]++
			}
		}
		return out, sc.Err()
	}
}

// logSince returns what a log file gained after offset (at most max
// bytes, the last ones), for a failed run's report.
func logSince(path string, offset int64, max int) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) <= offset {
		return ""
	}
	b = b[offset:]
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// fileSize is the size of path, 0 if it does not exist.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// goMemory reads where a Go server's memory is (the Go collector's
// metrics on Gatehouse's admin /metrics): heap in use, of it live after
// the last collection, goroutine stacks, the goroutines, and the
// collections so far. It says why RSS per connection is what it is.
func goMemory(c *http.Client, url string) func() string {
	return func() string {
		res, err := c.Get(url)
		if err != nil {
			return "Go memory: " + err.Error()
		}
		defer res.Body.Close()
		want := []struct{ metric, label string }{
			{"go_memstats_heap_inuse_bytes", "heap in use"},
			{"go_memstats_next_gc_bytes", "next GC at"},
			{"go_memstats_stack_inuse_bytes", "stacks"},
		}
		vals := map[string]float64{}
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			name, val, ok := strings.Cut(sc.Text(), " ")
			if !ok || strings.HasPrefix(name, "#") {
				continue
			}
			if v, err := strconv.ParseFloat(val, 64); err == nil {
				vals[name] = v
			}
		}
		var parts []string
		for _, w := range want {
			parts = append(parts, fmt.Sprintf("%s %.0f MiB", w.label, vals[w.metric]/(1<<20)))
		}
		parts = append(parts, fmt.Sprintf("%.0f goroutines", vals["go_goroutines"]),
			fmt.Sprintf("%.0f GCs", vals[`go_gc_duration_seconds_count`]))
		return "Go memory: " + strings.Join(parts, ", ")
	}
}
