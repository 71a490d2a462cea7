// Command bench-ssh (`make bench-ssh`) measures Gatehouse's SSH bastion
// against a direct connection and OpenSSH's own ProxyJump: 1 GiB through
// `ssh ... 'cat > /dev/null'` in interleaved rounds (medians), the CPU time
// of every process on the path from /proc, and connection setup time
// (`ssh ... true`, the key already bound) with hyperfine. It prints
// ratios to direct with the same cipher (aes128-gcm@openssh.com) and with
// OpenSSH's default (chacha20-poly1305), and checks the targets of
// issue 4.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

func main() {
	bin := flag.String("gatehouse", "./gatehouse", "gatehouse binary")
	size := flag.Int64("size", 1<<30, "bytes per transfer")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	setupRuns := flag.Int("setup-runs", 10, "hyperfine runs per path and round (0: skip)")
	keep := flag.Bool("keep", false, "keep the temporary directory (logs, configs)")
	only := flag.String("only", "", "measure only these paths (comma-separated names, e.g. \"Gatehouse,direct aes128-gcm\")")
	flag.Parse()
	if err := run(*bin, *size, *rounds, *setupRuns, *keep, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench-ssh:", err)
		os.Exit(1)
	}
}

func run(bin string, size int64, rounds, setupRuns int, keep bool, only string) error {
	for _, tool := range []string{"ssh", "ssh-keygen", "hyperfine", "/usr/sbin/sshd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing: run `make deps`", tool)
		}
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "gh-bench-ssh-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	e, err := setup(dir, abs)
	if err != nil {
		return err
	}
	defer e.stop()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ver, _ := exec.Command("ssh", "-V").CombinedOutput()
	fmt.Printf("bench-ssh: %s, %d MiB per transfer, %d rounds, CPUs: %d, load: %s\n",
		strings.TrimSpace(string(ver)), size>>20, rounds, numCPU(), loadAvg())
	var ps []path
	for _, p := range e.paths() {
		if only == "" || slices.Contains(strings.Split(only, ","), p.name) {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return fmt.Errorf("-only %q names no path", only)
	}
	for _, p := range ps { // check every path works before measuring
		if _, err := e.runTransfer(p, 8<<20); err != nil {
			return err
		}
	}
	res := map[string][]transfer{}
	setup := map[string][]float64{}
	for r := 1; r <= rounds; r++ {
		for _, p := range ps {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t, err := e.runTransfer(p, size)
			if err != nil {
				return err
			}
			fmt.Printf("round %d  %-22s %7.1f MiB/s  %s\n", r, p.name, t.mibps, cpuLine(p, t))
			res[p.name] = append(res[p.name], t)
		}
		if setupRuns > 0 {
			m, err := e.setupTimes(ps, setupRuns, filepath.Join(dir, fmt.Sprintf("hyperfine-%d.json", r)))
			if err != nil {
				return err
			}
			for name, s := range m {
				setup[name] = append(setup[name], s)
			}
		}
	}
	report(ps, res, setup)
	return nil
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
