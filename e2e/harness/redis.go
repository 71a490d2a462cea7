package harness

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is a redis-server started by StartRedis for one test.
type Redis struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// Password is the requirepass secret, or "" when none is set.
	Password string
	// PasswordFile holds Password (0600), for gatehouse's
	// redis.password_file; "" when there is no password.
	PasswordFile string

	d    *daemon
	bin  string
	args []string // redis-server's arguments, for Restart
}

// RedisOptions configures StartRedisWith.
type RedisOptions struct {
	// RequirePassword sets a random requirepass secret (see Redis.Password
	// and Redis.PasswordFile).
	RequirePassword bool
	// Persist turns on the append-only file with an fsync per write, as a
	// production Redis keeps its data, so that Restart brings the same
	// data back.
	Persist bool
}

// StartRedis starts Debian's redis-server on 127.0.0.1 on a free port, with
// no persistence (--save "" --appendonly no) and no password, waits until it
// answers PING and stops it when the test ends.
//
// Usage:
//
//	r := harness.StartRedis(t)
//	// config: redis: {addr: r.Addr}
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return StartRedisWith(t, RedisOptions{})
}

// StartRedisWith is StartRedis with options:
//
//	r := harness.StartRedisWith(t, harness.RedisOptions{RequirePassword: true})
//	// config: redis: {addr: r.Addr, password_file: r.PasswordFile}
func StartRedisWith(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	bin := RequireTool(t, "redis-server")
	dir := t.TempDir()
	r := &Redis{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))}
	_, port, _ := net.SplitHostPort(r.Addr)
	aof := "no"
	if opts.Persist {
		aof = "yes"
	}
	args := []string{
		"--bind", "127.0.0.1", "--port", port, "--dir", dir,
		"--save", "", "--appendonly", aof, "--appendfsync", "always", "--daemonize", "no",
		"--protected-mode", "yes", "--loglevel", "notice", "--logfile", "",
	}
	if opts.RequirePassword {
		b := make([]byte, 16)
		rand.Read(b)
		r.Password = hex.EncodeToString(b)
		r.PasswordFile = filepath.Join(dir, "redis-password")
		if err := os.WriteFile(r.PasswordFile, []byte(r.Password+"\n"), 0o600); err != nil {
			t.Fatalf("StartRedis: %v", err)
		}
		// "-" makes redis-server read more config from stdin, which keeps
		// the secret off the command line that ps shows.
		args = append([]string{"-"}, args...)
	}
	r.bin, r.args = bin, args
	r.start(t)
	return r
}

// start runs redis-server with r's arguments and waits until it answers.
func (r *Redis) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(r.bin, r.args...)
	if r.Password != "" {
		cmd.Stdin = strings.NewReader("requirepass " + r.Password + "\n")
	}
	r.d = startDaemon(t, "redis", cmd)
	r.d.waitReady(t, 15*time.Second, func() error { return redisPing(r.Addr, r.Password) })
}

// Restart starts the server again after Stop, on the same address and
// directory (with Persist, with the same data). The port was free when the
// test picked it and Redis held it until Stop, so it is taken again at once.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	r.start(t)
}

// Stop stops the server now (SIGTERM, then SIGKILL after 5s), for tests of
// what happens when Redis goes away. It is safe to call more than once; the
// test's cleanup calls it too.
func (r *Redis) Stop() { r.d.stop() }

// redisPing sends AUTH (if password is set) and PING in RESP and expects
// +PONG.
func redisPing(addr, password string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(c)
	if password != "" {
		fmt.Fprintf(c, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password)
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "+OK") {
			return fmt.Errorf("AUTH: %q", strings.TrimSpace(line))
		}
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING: %q", strings.TrimSpace(line))
	}
	return nil
}

// daemon is a long-running program that a harness Start function started
// for one test. Its output goes to t.Log, line by line, prefixed with its
// name, until the test's cleanup stops it; the last lines appear in
// failure messages.
type daemon struct {
	name string
	cmd  *exec.Cmd
	out  *lineLog
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result; read only after done is closed

	stopOnce sync.Once
}

// startDaemon starts cmd in its own process group and registers its stop
// with t.Cleanup. It fails the test if the program cannot start.
func startDaemon(t testing.TB, name string, cmd *exec.Cmd) *daemon {
	t.Helper()
	d := &daemon{name: name, cmd: cmd, out: newLineLog(t, name), done: make(chan struct{})}
	cmd.Stdout = d.out
	cmd.Stderr = d.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Children that inherit the output pipe (sshd's per-connection
	// processes) must not keep Wait from returning.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s (%s): %v", name, cmd.Path, err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(d.stop)
	return d
}

// stop sends SIGTERM to the process group, waits up to 5s, then sends
// SIGKILL, and waits for the exit. After stop the output no longer reaches
// t.Log (the test may have ended). It is idempotent.
func (d *daemon) stop() {
	d.stopOnce.Do(func() {
		pgid := d.cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-d.done
		}
		d.out.close()
	})
}

// exited reports whether the process has exited.
func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// waitReady calls probe every 50ms until it returns nil. It fails the test,
// with the program's last output, if the program exits first or timeout
// passes.
func (d *daemon) waitReady(t testing.TB, timeout time.Duration, probe func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if d.exited() {
			t.Fatalf("%s exited before it was ready (%v); last output:\n%s", d.name, d.err, d.out.tail(40))
		}
		if last = probe(); last == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v: %v; last output:\n%s", d.name, timeout, last, d.out.tail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Sentinel is a Redis Sentinel started by StartSentinel for one test.
type Sentinel struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	d    *daemon
}

// StartSentinel starts Debian's redis-server in Sentinel mode on a free
// loopback port, monitoring master under name, and waits until it answers
// PING. The test's cleanup stops it.
//
//	r := harness.StartRedis(t)
//	s := harness.StartSentinel(t, r, "gatehouse")
//	// config: redis: {sentinel: {master_name: gatehouse, addrs: [s.Addr]}}
func StartSentinel(t testing.TB, master *Redis, name string) *Sentinel {
	t.Helper()
	bin := RequireTool(t, "redis-server")
	dir := t.TempDir()
	s := &Sentinel{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))}
	_, port, _ := net.SplitHostPort(s.Addr)
	mhost, mport, _ := net.SplitHostPort(master.Addr)
	conf := filepath.Join(dir, "sentinel.conf")
	lines := []string{
		"bind 127.0.0.1", "port " + port, "dir " + dir, "daemonize no", "protected-mode yes",
		fmt.Sprintf("sentinel monitor %s %s %s 1", name, mhost, mport),
	}
	if master.Password != "" {
		lines = append(lines, fmt.Sprintf("sentinel auth-pass %s %s", name, master.Password))
	}
	// Sentinel rewrites its config file, so it must be writable.
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("StartSentinel: %v", err)
	}
	s.d = startDaemon(t, "sentinel", exec.Command(bin, conf, "--sentinel"))
	s.d.waitReady(t, 15*time.Second, func() error { return redisPing(s.Addr, "") })
	return s
}
