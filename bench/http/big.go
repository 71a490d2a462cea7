package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// bigSize is the size of the large response and of the upload.
const bigSize = 1 << 20

// bigBody is the large response the upstream serves as /big.bin.
func bigBody() []byte { return bytes.Repeat([]byte("0123456789abcdef"), bigSize/16) }

// writeUploadScript writes a wrk script that POSTs a bigSize body.
func writeUploadScript(path string) error {
	return os.WriteFile(path, []byte(fmt.Sprintf(`wrk.method = "POST"
wrk.body = string.rep("u", %d)
wrk.headers["Content-Type"] = "application/octet-stream"
`, bigSize)), 0o644)
}

// bigConns is the wrk connections of the large-body mode: enough to keep
// the proxy busy, few enough that each transfer is mostly streaming.
const bigConns = 8

// runBig measures a 1 MiB response and a 1 MiB upload through Gatehouse
// and nginx: MiB/s and CPU per MiB.
func (e *env) runBig() error {
	o := e.o
	script := filepath.Join(e.dir, "upload.lua")
	if err := writeUploadScript(script); err != nil {
		return err
	}
	d := o.duration / 2
	fmt.Printf("\n1 MiB bodies: wrk -t%d -c%d -d%s, %d interleaved rounds; load %s\n", o.threads, bigConns, d, o.rounds, loadavg())
	for _, kind := range []struct{ name, path, script string }{
		{"download 1 MiB", "big.bin", ""},
		{"upload 1 MiB", "upload", script},
	} {
		var targets []*target
		for _, base := range []*target{e.ghT, e.ngxT} {
			t := *base
			t.page, t.url, t.results = base.url, base.url+kind.path, nil
			targets = append(targets, &t)
		}
		for round := 1; round <= o.rounds; round++ {
			for _, t := range targets {
				s, err := e.measure(t, kind.name+" round "+strconv.Itoa(round), func() (wrkResult, error) {
					return runWrk(t.url, t.headers, o.threads, bigConns, d, kind.script)
				})
				if err != nil {
					return fmt.Errorf("%s, %s: %w", kind.name, t.name, err)
				}
				t.results = append(t.results, s)
				fmt.Printf("%s %d  %-26s %8.1f MiB/s  p99 %8s  %6.2f ms CPU/MiB%s\n", kind.name, round, t.name, s.rps*bigSize/(1<<20),
					s.p99.Round(time.Microsecond), float64(s.cpuPerReq.Microseconds())/1e3, errNote(s.errors))
			}
		}
		gh, ngx := medianOf(targets[0].results), medianOf(targets[1].results)
		fmt.Printf("%s medians: gatehouse %.1f MiB/s (%.2f ms CPU/MiB), nginx %.1f MiB/s (%.2f ms CPU/MiB)\n", kind.name,
			gh.rps, float64(gh.cpu.Microseconds())/1e3, ngx.rps, float64(ngx.cpu.Microseconds())/1e3)
		e.bigChecks = append(e.bigChecks, bigCheck{kind.name, gh, ngx})
	}
	fmt.Println("\n1 MiB targets:")
	for _, c := range e.bigChecks {
		check(c.gh.rps >= 0.8*c.ngx.rps, "%s: gatehouse throughput >= 0.8x nginx: %.2fx (CPU/MiB %.2fx)", c.name,
			c.gh.rps/c.ngx.rps, float64(c.gh.cpu)/float64(c.ngx.cpu))
	}
	return nil
}

// bigCheck is one large-body result for the targets.
type bigCheck struct {
	name    string
	gh, ngx medians
}
