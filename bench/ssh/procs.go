package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// daemon is a server process the benchmark started and stops.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  string
	cpu  *cpuGroup // the daemon and every process it starts
}

// startDaemon runs bin with args, its output in dir/name.log.
func startDaemon(dir, name, bin string, args ...string) (*daemon, error) {
	return startDaemonEnv(dir, name, nil, bin, args...)
}

// startDaemonEnv is startDaemon with extra environment variables.
func startDaemonEnv(dir, name string, env []string, bin string, args ...string) (*daemon, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cg, err := newCPUGroup(name)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Start(); err != nil {
		cg.remove()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, cmd: cmd, log: logPath, cpu: cg}
	if err := cg.add(cmd.Process.Pid); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// stop sends SIGTERM, then SIGKILL after 5 s, and reaps the process.
func (d *daemon) stop() {
	if d == nil {
		return
	}
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
	d.cpu.settle(0)
	d.cpu.remove()
}

func (d *daemon) tail() string {
	b, _ := os.ReadFile(d.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitSSH waits until addr sends an SSH identification line.
func waitSSH(addr string, d *daemon) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			b := make([]byte, 8)
			n, _ := c.Read(b)
			c.Close()
			if n == 8 && string(b) == "SSH-2.0-" {
				return nil
			}
		}
		if d.cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s does not answer on %s:\n%s", d.name, addr, d.tail())
}

// freePort returns a free loopback TCP port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
