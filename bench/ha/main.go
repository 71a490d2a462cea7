// Command bench-ha (`make bench-ha`) load-tests two Gatehouse replicas on
// one Redis, all on loopback: many concurrent HTTPS requests through the
// app gate and many concurrent SSH sessions through the bastion, spread
// over both replicas, for a bounded time per phase. It reports throughput,
// p50/p99 latency, errors by kind (the program exits 1 on any), the Redis
// commands per request and per SSH session (INFO commandstats deltas),
// and the CPU time of each server process. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// opts are the command-line settings.
type opts struct {
	bin                    string
	phase, idle            time.Duration
	httpConc, cold, people int
	sshConc, keysPerWorker int
	sshBytes               int64
	keep                   bool
}

func main() {
	var o opts
	flag.StringVar(&o.bin, "gatehouse", "", "gatehouse binary (empty: go build ./cmd/gatehouse into the temporary directory)")
	flag.DurationVar(&o.phase, "d", 20*time.Second, "length of the HTTP and SSH load phases")
	flag.DurationVar(&o.idle, "idle", 5*time.Second, "idle measurement (Redis calls the replicas make with no load)")
	flag.IntVar(&o.httpConc, "http-conc", 32, "concurrent HTTP clients, one keep-alive connection and one session each")
	flag.IntVar(&o.cold, "cold", 2000, "fresh sessions used once each (the cost of a cookie-cache miss)")
	flag.IntVar(&o.people, "people", 8, "people the sessions and keys belong to")
	flag.IntVar(&o.sshConc, "ssh-conc", 8, "concurrent SSH clients, one source address each")
	flag.IntVar(&o.keysPerWorker, "ssh-keys", 8, "bound SSH keys per SSH client (the gateway limits key proofs per source and key)")
	flag.Int64Var(&o.sshBytes, "ssh-bytes", 64<<10, "bytes each SSH session reads from the target")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs, recordings)")
	flag.Parse()
	ok, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-ha:", err)
		os.Exit(1)
	}
	if !ok {
		fmt.Fprintln(os.Stderr, "bench-ha: FAILED: errors under load (above)")
		os.Exit(1)
	}
}

func run(o opts) (bool, error) {
	for _, tool := range []string{"redis-server", "ssh-keygen", "/usr/sbin/sshd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false, fmt.Errorf("%s is missing: run `make deps`", tool)
		}
	}
	dir, err := os.MkdirTemp("", "gh-bench-ha-")
	if err != nil {
		return false, err
	}
	if o.keep {
		fmt.Println("keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if o.bin == "" {
		o.bin = filepath.Join(dir, "gatehouse")
		fmt.Println("building", o.bin)
		if out, err := exec.Command("go", "build", "-o", o.bin, "./cmd/gatehouse").CombinedOutput(); err != nil {
			return false, fmt.Errorf("go build ./cmd/gatehouse (run from the repository root): %v\n%s", err, out)
		}
	} else if o.bin, err = filepath.Abs(o.bin); err != nil {
		return false, err
	}
	e, err := setup(dir, o.bin)
	if err != nil {
		return false, err
	}
	defer e.stop()
	// Ctrl-C stops every process started here (deferred calls do not run
	// when a signal ends the program).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			e.stop()
			if !o.keep {
				os.RemoveAll(dir)
			}
			os.Exit(130)
		}
	}()
	return measure(context.Background(), e, o)
}
