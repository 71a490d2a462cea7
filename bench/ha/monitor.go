package main

import (
	"bufio"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"
)

// monitor records every command Redis runs (MONITOR) while one request or
// session goes through, so the report can name the keys behind the counts.
type monitor struct {
	c    net.Conn
	mu   sync.Mutex // guards cmds
	cmds []string
	done chan struct{}
}

func startMonitor(addr string) (*monitor, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte("MONITOR\r\n")); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if l, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
		c.Close()
		return nil, fmt.Errorf("MONITOR: %q %v", l, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	m := &monitor{c: c, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			m.mu.Lock()
			m.cmds = append(m.cmds, l)
			m.mu.Unlock()
		}
	}()
	return m, nil
}

// stop ends the recording (after a short grace for commands in flight)
// and returns the commands in order: the command and its key with random
// parts (IDs, fingerprints) masked, values left out, runs of the same
// line folded into one with a count.
func (m *monitor) stop() []string {
	time.Sleep(200 * time.Millisecond)
	m.c.Close()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, l := range m.cmds {
		// +1733300000.123456 [0 127.0.0.1:5555] "get" "gatehouse:identity/..."
		_, rest, ok := strings.Cut(l, "] ")
		if !ok {
			continue
		}
		args := quoted.FindAllString(rest, 3)
		if len(args) == 0 || strings.EqualFold(args[0], `"monitor"`) {
			continue
		}
		for i := range args {
			args[i] = randomPart.ReplaceAllString(strings.Trim(args[i], `"`), "<id>")
		}
		if cmd := strings.ToLower(args[0]); cmd == "evalsha" || cmd == "eval" {
			args[1] = "<script>" // the key follows the script and numkeys
			if more := quoted.FindAllString(rest, 4); len(more) == 4 {
				args = []string{cmd, randomPart.ReplaceAllString(strings.Trim(more[3], `"`), "<id>")}
			}
		} else if len(args) > 2 {
			args = args[:2]
		}
		out = appendFolded(out, strings.Join(args, " "))
	}
	return out
}

// appendFolded appends line, or counts it on the last line if equal.
func appendFolded(out []string, line string) []string {
	if n := len(out); n > 0 {
		last, count := out[n-1], 1
		if base, c, ok := strings.Cut(out[n-1], " ×"); ok {
			last, count = base, 0
			fmt.Sscan(c, &count)
		}
		if last == line {
			out[n-1] = fmt.Sprintf("%s ×%d", line, count+1)
			return out
		}
	}
	return append(out, line)
}

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	randomPart = regexp.MustCompile(`SHA256(:|%3A)[A-Za-z0-9%+/=_\-]+|[A-Za-z0-9_\-]{16,}`)
)
