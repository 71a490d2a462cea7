package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cpuGroup accounts the CPU time of a process and all its descendants,
// including those that already exited, in a cgroup of its own. The
// per-process counters in /proc/PID/stat cannot do that for sshd: its
// per-connection processes exit in an order that leaves their time out of
// the master's cutime/cstime (measured: 0.02 CPU-s/GiB for a target sshd
// that top showed at 56% during the transfer).
type cpuGroup struct {
	dir   string
	usage func(dir string) (float64, error) // seconds
}

// cgroupRoot finds a writable cgroup hierarchy with CPU accounting: v1
// cpuacct, or v2.
func cgroupRoot() (string, func(string) (float64, error), error) {
	if fileExists("/sys/fs/cgroup/cpuacct/cpuacct.usage") {
		return "/sys/fs/cgroup/cpuacct", usageV1, nil
	}
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if fileExists(filepath.Join(root, "cgroup.controllers")) {
			return root, usageV2, nil
		}
	}
	return "", nil, errors.New("no cgroup hierarchy with CPU accounting (cpuacct v1 or cgroup v2) is mounted")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// newCPUGroup creates a cgroup for one role of the benchmark.
func newCPUGroup(name string) (*cpuGroup, error) {
	root, usage, err := cgroupRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, fmt.Sprintf("gh-bench-ssh-%d-%s", os.Getpid(), name))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup (run as root): %w", err)
	}
	return &cpuGroup{dir: dir, usage: usage}, nil
}

// add moves pid (and so its future children) into the group.
func (g *cpuGroup) add(pid int) error {
	return os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// seconds returns the CPU time used in the group so far.
func (g *cpuGroup) seconds() (float64, error) { return g.usage(g.dir) }

// settle waits until at most n processes remain in the group (for a
// daemon: its master; for the client: none), so that finished connections
// are fully counted.
func (g *cpuGroup) settle(n int) { g.settleWithin(n, 10*time.Second) }

// settleWithin is settle with a deadline of its own.
func (g *cpuGroup) settleWithin(n int, d time.Duration) {
	if g == nil {
		return
	}
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
		if err != nil || len(strings.Fields(string(b))) <= n {
			return
		}
	}
}

// remove deletes the group once its processes have ended.
func (g *cpuGroup) remove() {
	if g != nil {
		_ = os.Remove(g.dir)
	}
}

func usageV1(dir string) (float64, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cpuacct.usage"))
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return float64(ns) / 1e9, err
}

func usageV2(dir string) (float64, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return float64(us) / 1e6, err
		}
	}
	return 0, errors.New("cpu.stat has no usage_usec")
}

// quiet waits (at most d) until the group used less than 2% of a CPU over
// a second: a thousand sessions ending keep sshd and Gatehouse busy for a
// while, which the next measurement must not count.
func (g *cpuGroup) quiet(d time.Duration) {
	if g == nil {
		return
	}
	prev, _ := g.seconds()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		time.Sleep(time.Second)
		c, _ := g.seconds()
		if c-prev < 0.02 {
			return
		}
		prev = c
	}
}
