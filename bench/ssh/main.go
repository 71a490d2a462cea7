// Command bench-ssh (`make bench-ssh`) measures Gatehouse's SSH bastion
// against a direct connection and OpenSSH's own ProxyJump: 1 GiB through
// `ssh ... 'cat > /dev/null'` in interleaved rounds (medians), the CPU time
// of every process on the path (cgroups), and connection setup time
// (`ssh ... true`, the key already bound) with hyperfine; it prints ratios
// to direct with the same cipher (aes128-gcm@openssh.com) and with
// OpenSSH's default (chacha20-poly1305). Two more modes: "many" runs 1, 10
// and 100 sessions at once (64 MiB each) on direct, ProxyJump and
// Gatehouse for the cost growth table; "idle" holds 1,000 idle shells
// through Gatehouse and reports its RSS per session and the connection
// setup time while they are held. The targets of issue 11 end the report.
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
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare" {
		os.Exit(runBare(os.Args[2:]))
	}
	bin := flag.String("gatehouse", "./gatehouse", "gatehouse binary")
	size := flag.Int64("size", 1<<30, "bytes per transfer")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	setupRuns := flag.Int("setup-runs", 10, "hyperfine runs per path and round (0: skip)")
	keep := flag.Bool("keep", false, "keep the temporary directory (logs, configs)")
	only := flag.String("only", "", "measure only these paths (comma-separated names, e.g. \"Gatehouse,direct aes128-gcm\")")
	var o opts
	flag.StringVar(&o.modes, "modes", "idle,classic,many", "modes to run: idle, classic (1 GiB per path), many (concurrent sessions)")
	flag.StringVar(&o.conns, "conns", "1,10,100", "many: session counts")
	flag.Int64Var(&o.manySize, "many-size", 64<<20, "many: bytes per session")
	flag.DurationVar(&o.gap, "launch-gap", 10*time.Millisecond, "many: least time between session starts")
	flag.StringVar(&o.manyPaths, "many-paths", "direct aes128-gcm,ProxyJump aes128-gcm,Gatehouse", "many: paths measured")
	flag.IntVar(&o.manyRounds, "many-rounds", 1, "many: interleaved rounds (medians)")
	flag.IntVar(&o.idle, "idle", 1000, "idle: sessions held")
	flag.IntVar(&o.idleParallel, "idle-parallel", 8, "idle: sessions opened at once")
	flag.IntVar(&o.probes, "probes", 100, "idle: setup probes per path while the sessions are held")
	flag.StringVar(&o.env, "gatehouse-env", "", "extra space-separated `VAR=value` in Gatehouse's environment (e.g. GOGC=100)")
	flag.DurationVar(&o.hold, "idle-hold", 0, "idle: keep the sessions this long after measuring (to inspect Gatehouse, e.g. with -keep)")
	flag.Parse()
	o.bin, o.size, o.rounds, o.setupRuns, o.keep, o.only = *bin, *size, *rounds, *setupRuns, *keep, *only
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-ssh:", err)
		os.Exit(1)
	}
}

// opts are the command's flags.
type opts struct {
	bin, only, modes, conns, env string
	manyPaths                    string
	size, manySize               int64
	rounds, setupRuns            int
	manyRounds, idle             int
	idleParallel, probes         int
	gap, hold                    time.Duration
	keep                         bool
}

func run(o opts) error {
	bin, size, rounds, setupRuns, keep, only := o.bin, o.size, o.rounds, o.setupRuns, o.keep, o.only
	modes := strings.Split(o.modes, ",")
	var conns []int
	for _, c := range strings.Split(o.conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return fmt.Errorf("-conns: bad count %q", c)
		}
		conns = append(conns, n)
	}
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
	e, err := setup(dir, abs, strings.Fields(o.env))
	if err != nil {
		return err
	}
	defer e.stop()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ver, _ := exec.Command("ssh", "-V").CombinedOutput()
	fmt.Printf("bench-ssh: %s, CPUs: %d, load: %s, modes: %s, Gatehouse env: %q\n",
		strings.TrimSpace(string(ver)), numCPU(), loadAvg(), o.modes, o.env)
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
	var idleRes *idle
	if slices.Contains(modes, "idle") {
		fmt.Printf("\nidle: %d interactive shells held through Gatehouse (Go SSH clients, aes128-gcm), %d setup probes per path while held, load %s\n",
			o.idle, o.probes, loadAvg())
		r, err := e.runIdle(o.idle, o.idleParallel, o.probes, o.hold, pick(ps, "direct aes128-gcm", "Gatehouse"))
		if err != nil {
			return err
		}
		idleRes = &r
		reportIdle(r)
	}
	var manyRes map[string][]many
	if slices.Contains(modes, "many") {
		fmt.Printf("\nmany: %v sessions at once, %d MiB each (`cat > /dev/null`, stdin from a file), at most %d connecting at once, %d round(s), load %s\n",
			conns, o.manySize>>20, maxUnauth, o.manyRounds, loadAvg())
		fmt.Println("  MiB/s: all sessions' bytes over the time from the first start to the last exit; CPU-s/GiB includes connection setup")
		manyRes = map[string][]many{}
		for r := 0; r < o.manyRounds; r++ {
			for _, n := range conns {
				for _, p := range pick(ps, strings.Split(o.manyPaths, ",")...) {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					m, err := e.runMany(p, n, o.manySize, o.gap)
					if err != nil {
						return err
					}
					fmt.Println(manyLine(p.name, m), " load", loadAvg())
					key := p.name + "/" + strconv.Itoa(n)
					manyRes[key] = append(manyRes[key], m)
				}
			}
		}
	}
	if !slices.Contains(modes, "classic") {
		reportTargets(nil, nil, nil, idleRes, manyRes, conns, pick(ps, strings.Split(o.manyPaths, ",")...))
		return nil
	}
	fmt.Printf("\nclassic: %d MiB per transfer, %d rounds, load %s\n", size>>20, rounds, loadAvg())
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
	reportTargets(ps, res, setup, idleRes, manyRes, conns, pick(ps, strings.Split(o.manyPaths, ",")...))
	return nil
}

// pick returns the paths of ps with these names, in ps's order.
func pick(ps []path, names ...string) []path {
	var out []path
	for _, p := range ps {
		if slices.Contains(names, p.name) {
			out = append(out, p)
		}
	}
	return out
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
