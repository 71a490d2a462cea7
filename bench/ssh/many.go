package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// source returns a fresh loopback source address for the next client
// connection. Gatehouse counts key proofs per (source, key) and minute
// (sshgw.DefaultAuthPerKey: 120), which one address would exceed with
// hundreds of connections; a person's connections come from many places
// in real life, so each bench connection gets its own address.
func (e *env) source() string {
	n := e.srcN.Add(1)
	return fmt.Sprintf("127.1.%d.%d", (n/250)%256, 1+n%250)
}

// zeroFile returns a sparse file of size zero bytes, the stdin of the
// concurrent transfers: ssh reads it itself, so the bench process moves no
// data.
func (e *env) zeroFile(size int64) (string, error) {
	p := filepath.Join(e.dir, fmt.Sprintf("zeros-%d", size))
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return p, f.Truncate(size)
}

// maxUnauth bounds the sessions connecting at once in runMany.
const maxUnauth = 16

// readyMark is what ssh's LocalCommand prints once connected.
const readyMark = "gh-bench-connected"

// many is one concurrent run: n sessions at once, each moving size bytes.
type many struct {
	n       int
	mibps   float64            // aggregate, from the first launch to the last exit
	cpu     map[string]float64 // CPU seconds per GiB moved, by role
	elapsed time.Duration
}

// runMany starts n `ssh ... 'cat > /dev/null'` on path p, each reading
// size bytes of zeros from a file, launched gap apart with at most
// maxUnauth connecting at once, and measures the aggregate throughput and the CPU time of every role.
func (e *env) runMany(p path, n int, size int64, gap time.Duration) (many, error) {
	file, err := e.zeroFile(size)
	if err != nil {
		return many{}, err
	}
	roles := append([]string{"client"}, p.procs...)
	before := map[string]float64{}
	for _, name := range roles {
		g := e.group(name)
		g.settle(e.residents(name))
		if before[name], err = g.seconds(); err != nil {
			return many{}, err
		}
	}
	var (
		wg     sync.WaitGroup
		failed atomic.Pointer[error]
	)
	// At most maxUnauth sessions are connecting at once: a session counts
	// until ssh ran its LocalCommand (after authentication) or exited.
	// Gatehouse's MaxStartups starts dropping at 30 unauthenticated
	// connections, and a loaded machine keeps handshakes in flight longer.
	unauth := make(chan struct{}, maxUnauth)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if i > 0 {
			time.Sleep(gap)
		}
		unauth <- struct{}{}
		in, err := os.Open(file)
		if err != nil {
			return many{}, err
		}
		args := append([]string{"-F", p.cfg, "-b", e.source(), "-o", "PermitLocalCommand=yes", "-o", "LocalCommand=echo " + readyMark}, p.args...)
		cmd := exec.Command("ssh", append(args, "cat > /dev/null")...)
		cmd.Stdin = in
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			in.Close()
			return many{}, err
		}
		if err := cmd.Start(); err != nil {
			in.Close()
			return many{}, err
		}
		_ = e.client.add(cmd.Process.Pid)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer in.Close()
			var once sync.Once
			release := func() { once.Do(func() { <-unauth }) }
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if sc.Text() == readyMark {
					release()
				}
			}
			release()
			if err := cmd.Wait(); err != nil {
				err = fmt.Errorf("%s (%d sessions): %v: %s", p.name, n, err, strings.TrimSpace(stderr.String()))
				failed.CompareAndSwap(nil, &err)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if err := failed.Load(); err != nil {
		return many{}, *err
	}
	total := float64(size) * float64(n)
	m := many{n: n, mibps: total / (1 << 20) / elapsed.Seconds(), cpu: map[string]float64{}, elapsed: elapsed}
	for _, name := range roles {
		g := e.group(name)
		g.settle(e.residents(name))
		c, err := g.seconds()
		if err != nil {
			return many{}, err
		}
		m.cpu[name] = (c - before[name]) / (total / (1 << 30))
	}
	return m, nil
}

// manyLine prints one concurrent run.
func manyLine(name string, m many) string {
	parts, total := cpuParts(m.cpu)
	return fmt.Sprintf("%4d sessions  %-22s %7.1f MiB/s (%.1fs)  CPU-s/GiB: %s (total %.2f)",
		m.n, name, m.mibps, m.elapsed.Seconds(), strings.Join(parts, ", "), total)
}
