package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// phase is one measured stretch: its outcomes, Redis calls and CPU.
type phase struct {
	name  string
	unit  string // "request", "session"
	t     *tally
	secs  float64
	redis cmdStats
	cpu   map[string]float64 // seconds of CPU per process name
	keys  int64              // DBSIZE at the end
}

// snapshot is the counters at one instant.
type snapshot struct {
	at    time.Time
	redis cmdStats
	cpu   map[string]float64
	keys  int64
}

func (e *env) snap(ctx context.Context, rc *redis.Client) (snapshot, error) {
	s := snapshot{cpu: map[string]float64{}}
	var err error
	if s.redis, err = readCmdStats(ctx, rc); err != nil {
		return s, err
	}
	procs := map[string]*daemon{"redis": e.redis, "replica A": e.replicas[0].d, "replica B": e.replicas[1].d, "target sshd (master)": e.target}
	for name, d := range procs {
		if d.exited() {
			continue // reported as an error after the phases
		}
		if s.cpu[name], err = cpuSeconds(d.cmd.Process.Pid); err != nil {
			return s, fmt.Errorf("%s: %w", name, err)
		}
	}
	if s.keys, err = rc.DBSize(ctx).Result(); err != nil {
		return s, fmt.Errorf("redis DBSIZE: %w", err)
	}
	s.at = time.Now()
	return s, nil
}

// between builds the phase from two snapshots.
func between(name, unit string, t *tally, a, b snapshot) phase {
	p := phase{name: name, unit: unit, t: t, secs: b.at.Sub(a.at).Seconds(), redis: delta(a.redis, b.redis), cpu: map[string]float64{}, keys: b.keys}
	for k, v := range b.cpu {
		p.cpu[k] = v - a.cpu[k]
	}
	return p
}

// cpuSeconds is utime+stime of pid and its reaped children
// (/proc/PID/stat), in seconds.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return float64(ticks) / 100, nil // USER_HZ is 100 on Linux
}

// measure mints the state, starts the replicas and runs the phases.
func measure(ctx context.Context, e *env, o opts) (bool, error) {
	if o.cold < 2 || o.httpConc < 2 || o.sshConc < 1 || o.sshConc > 200 || o.keysPerWorker < 1 || o.people < 1 {
		return false, fmt.Errorf("need -cold >= 2, -http-conc >= 2, 1 <= -ssh-conc <= 200, -ssh-keys >= 1, -people >= 1")
	}
	start := time.Now()
	m, err := e.mintAll(ctx, o.people, o.httpConc, o.cold, o.sshConc*o.keysPerWorker)
	if err != nil {
		return false, fmt.Errorf("mint sessions and keys: %w", err)
	}
	fmt.Printf("minted %d people, %d+%d app sessions, %d bound SSH keys in %.1fs\n",
		o.people, len(m.hot), len(m.cold), len(m.keys), time.Since(start).Seconds())
	if err := e.startReplicas(); err != nil {
		return false, err
	}
	pool := e.tls.Pool()
	if err := checkGate(e, pool, m.hot[0]); err != nil {
		return false, err
	}
	rc := redis.NewClient(&redis.Options{Addr: e.redisAddr})
	defer rc.Close()

	var phases []phase
	run := func(name, unit string, f func(ready func()) *tally) error {
		var a snapshot
		var err error
		ready := func() { a, err = e.snap(ctx, rc) }
		t := f(ready)
		if err != nil {
			return err
		}
		b, err := e.snap(ctx, rc)
		if err != nil {
			return err
		}
		phases = append(phases, between(name, unit, t, a, b))
		fmt.Printf("phase %s: %d %ss, %d errors\n", name, t.count(), unit, t.errCount())
		return nil
	}
	steps := []struct {
		name, unit string
		f          func(ready func()) *tally
	}{
		{"idle", "second", func(ready func()) *tally { ready(); time.Sleep(o.idle); return newTally() }},
		{fmt.Sprintf("HTTP, %d keep-alive clients, cached cookies", o.httpConc), "request", func(ready func()) *tally {
			ready()
			return httpHot(e, pool, m.hot, o.phase)
		}},
		{fmt.Sprintf("HTTP, %d fresh sessions once each (cookie cache miss)", o.cold), "request", func(ready func()) *tally {
			return httpCold(e, pool, m.cold[1:], o.httpConc, ready)
		}},
		{fmt.Sprintf("SSH, %d concurrent clients, %d KiB each", o.sshConc, o.sshBytes>>10), "session", func(ready func()) *tally {
			ready()
			return sshLoad(e, m.keys, o.sshConc, o.sshBytes, o.phase)
		}},
		// The replicas must go back to what they did before the load.
		{"idle after the load", "second", func(ready func()) *tally { ready(); time.Sleep(o.idle); return newTally() }},
	}
	for _, s := range steps {
		if err := run(s.name, s.unit, s.f); err != nil {
			return false, err
		}
	}
	// A failure from here on is reported with the phases, not instead.
	explained, err := explain(e, pool, m, o.sshBytes)
	if err != nil {
		explained = "\nexplain: FAILED: " + err.Error() + "\n"
	}
	sshOK := 1 // explain's session
	for _, p := range phases {
		if p.unit == "session" {
			sshOK += int(p.t.count())
		}
	}
	recSummary, recProblems := e.checkRecordings(sshOK)
	logErrs := e.replicaLogErrors()
	report(os.Stdout, phases, logErrs, o)
	fmt.Print(explained)
	fmt.Print("\n" + recSummary)
	for _, p := range recProblems {
		fmt.Println("  " + p)
	}
	ok := err == nil && len(logErrs) == 0 && len(recProblems) == 0
	for _, p := range phases {
		ok = ok && p.t.errCount() == 0
	}
	for _, r := range e.replicas {
		if r.d.exited() {
			fmt.Printf("replica %s exited during the run:\n%s\n", strings.ToUpper(r.name), r.d.tail())
			ok = false
		}
	}
	if up, err := exec.Command("uptime").Output(); err == nil {
		fmt.Printf("uptime: %s", up)
	}
	return ok, nil
}

// replicaLogErrors returns the replicas' ERROR log lines.
func (e *env) replicaLogErrors() []string {
	var out []string
	for _, r := range e.replicas {
		b, _ := os.ReadFile(r.d.log)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "level=ERROR") || strings.Contains(l, `"level":"ERROR"`) {
				out = append(out, "replica "+strings.ToUpper(r.name)+": "+l)
			}
		}
	}
	return out
}
