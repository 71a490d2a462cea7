package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// path is one way of reaching the target: direct, through OpenSSH's
// ProxyJump, or through Gatehouse.
type path struct {
	name  string
	cfg   string   // ssh_config file (cipher choice)
	args  []string // ssh arguments before the command
	procs []string // server processes on the path, for CPU accounting
}

// paths returns the measured paths.
func (e *env) paths() []path {
	t := fmt.Sprintf("%s@127.0.0.1", e.login)
	tp := fmt.Sprint(e.tPort)
	jump := fmt.Sprintf("%s@127.0.0.1:%d", e.login, e.jPort)
	gw := fmt.Sprintf("%s@bench@127.0.0.1", e.login)
	gp := fmt.Sprint(e.gPort)
	return []path{
		{name: "direct aes128-gcm", cfg: e.cfgAES, args: []string{"-p", tp, t}, procs: []string{"target"}},
		{name: "direct default", cfg: e.cfgDefault, args: []string{"-p", tp, t}, procs: []string{"target"}},
		{name: "ProxyJump aes128-gcm", cfg: e.cfgAES, args: []string{"-J", jump, "-p", tp, t}, procs: []string{"jump", "target"}},
		{name: "ProxyJump default", cfg: e.cfgDefault, args: []string{"-J", jump, "-p", tp, t}, procs: []string{"jump", "target"}},
		{name: "Gatehouse", cfg: e.cfgDefault, args: []string{"-p", gp, gw}, procs: []string{"gatehouse", "target"}},
		{name: "Gatehouse -J", cfg: e.cfgDefault, args: []string{"-J", "127.0.0.1:" + gp, e.login + "@bench"}, procs: []string{"gatehouse", "target"}},
		{name: barePath, cfg: e.cfgDefault, args: []string{"-p", fmt.Sprint(e.fPort), t}, procs: []string{bareRole, "target"}},
	}
}

// group returns the CPU accounting group of a role on the path.
func (e *env) group(name string) *cpuGroup {
	switch name {
	case "client":
		return e.client
	case "target":
		return e.target.cpu
	case "jump":
		return e.jump.cpu
	case bareRole:
		return e.bare.cpu
	default:
		return e.gate.cpu
	}
}

// residents is how many processes stay in a role's group between
// transfers: none for the client, the master for a daemon.
func (e *env) residents(name string) int {
	if name == "client" {
		return 0
	}
	return 1
}

// transfer is one measured copy.
type transfer struct {
	mibps float64
	cpu   map[string]float64 // CPU seconds per GiB: "client" and each server process
}

const chunk = 1 << 20

var zeros = make([]byte, chunk)

// runTransfer pushes size bytes of zeros through `ssh ... 'cat > /dev/null'`
// and measures throughput (from the first MiB accepted to exit, so
// connection setup is excluded) and the CPU time of every process on the
// path.
func (e *env) runTransfer(p path, size int64) (transfer, error) {
	before := map[string]float64{}
	for _, name := range append([]string{"client"}, p.procs...) {
		g := e.group(name)
		g.settle(e.residents(name))
		c, err := g.seconds()
		if err != nil {
			return transfer{}, err
		}
		before[name] = c
	}
	cmd := exec.Command("ssh", append(append([]string{"-F", p.cfg}, p.args...), "cat > /dev/null")...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return transfer{}, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return transfer{}, err
	}
	if err := e.client.add(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return transfer{}, err
	}
	var t0 time.Time
	var sent int64
	for sent < size {
		if _, err := stdin.Write(zeros); err != nil {
			break
		}
		sent += chunk
		if t0.IsZero() {
			t0 = time.Now()
		}
	}
	stdin.Close()
	err = cmd.Wait()
	elapsed := time.Since(t0)
	if err != nil || sent < size {
		return transfer{}, fmt.Errorf("%s: %v (sent %d): %s", p.name, err, sent, stderr.String())
	}
	gib := float64(size) / (1 << 30)
	t := transfer{mibps: float64(size-chunk) / (1 << 20) / elapsed.Seconds(), cpu: map[string]float64{}}
	for _, name := range append([]string{"client"}, p.procs...) {
		g := e.group(name)
		g.settle(e.residents(name)) // the jump ssh of -J outlives the client briefly
		c, err := g.seconds()
		if err != nil {
			return transfer{}, err
		}
		t.cpu[name] = (c - before[name]) / gib
	}
	return t, nil
}

// setupTimes measures `ssh ... true` for each path with hyperfine and
// returns the median seconds per path name.
func (e *env) setupTimes(ps []path, runs int, out string) (map[string]float64, error) {
	args := []string{"-N", "--warmup", "2", "--runs", fmt.Sprint(runs), "--export-json", out}
	for _, p := range ps {
		args = append(args, "-n", p.name, "ssh "+strings.Join(append(append([]string{"-F", p.cfg}, p.args...), "true"), " "))
	}
	if b, err := exec.Command("hyperfine", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("hyperfine: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	var res struct {
		Results []struct {
			Command string  `json:"command"`
			Median  float64 `json:"median"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, r := range res.Results {
		m[r.Command] = r.Median
	}
	return m, nil
}
