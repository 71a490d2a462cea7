package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// gateName is a name the replicas' host certificates carry (public_url's
// host), checked like OpenSSH's @cert-authority line does.
const gateName = "gate.localhost"

// hostKeyCallback accepts a host certificate for gateName signed by one
// of the replicas' host CAs, and nothing else.
func hostKeyCallback(cas []gossh.PublicKey) gossh.HostKeyCallback {
	cc := &gossh.CertChecker{IsHostAuthority: func(auth gossh.PublicKey, _ string) bool {
		for _, ca := range cas {
			if bytes.Equal(ca.Marshal(), auth.Marshal()) {
				return true
			}
		}
		return false
	}}
	return func(_ string, remote net.Addr, key gossh.PublicKey) error {
		return cc.CheckHostKey(gateName+":22", remote, key)
	}
}

// sshLoad runs conc workers for d. Worker w connects from its own
// loopback source address (127.0.0.10+w: many engineers, not one host
// behind the per-source limits), alternates between the replicas per
// connection, and cycles through its share of the bound keys (the
// gateway counts key proofs per source and key). Each session runs
// `head -c size /dev/zero` through LOGIN@bench on the target and reads
// exactly size bytes and exit status 0.
func sshLoad(e *env, keys []gossh.Signer, conc int, size int64, d time.Duration) *tally {
	t := newTally()
	stop := time.Now().Add(d)
	hk := hostKeyCallback(e.hostCAs)
	per := len(keys) / conc
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		mine := keys[w*per : (w+1)*per]
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(10+w))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(stop); n++ {
				rep := (w + n) % 2
				start := time.Now()
				kind, err := sshOnce(e, rep, src, mine[n%len(mine)], hk, size)
				if err != nil {
					t.fail(rep, "ssh "+kind, err.Error())
					continue
				}
				t.ok(rep, time.Since(start), size)
			}
		}()
	}
	wg.Wait()
	return t
}

// sshOnce makes one connection through replica rep and runs one command.
// kind names the step that failed.
func sshOnce(e *env, rep int, src *net.TCPAddr, key gossh.Signer, hk gossh.HostKeyCallback, size int64) (kind string, err error) {
	addr := fmt.Sprintf("127.0.0.1:%d", e.replicas[rep].sshPort)
	dl := net.Dialer{LocalAddr: src, Timeout: 5 * time.Second}
	nc, err := dl.Dial("tcp", addr)
	if err != nil {
		return "dial", err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	cfg := &gossh.ClientConfig{User: e.login + "@bench", Auth: []gossh.AuthMethod{gossh.PublicKeys(key)},
		HostKeyCallback: hk, Timeout: 10 * time.Second}
	conn, chans, reqs, err := gossh.NewClientConn(nc, addr, cfg)
	if err != nil {
		return "handshake/auth", err
	}
	c := gossh.NewClient(conn, chans, reqs)
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "session open", err
	}
	defer s.Close()
	out, err := s.StdoutPipe()
	if err != nil {
		return "session open", err
	}
	var stderr strings.Builder
	s.Stderr = &stderr
	if err := s.Start(fmt.Sprintf("head -c %d /dev/zero", size)); err != nil {
		return "exec", err
	}
	n, err := io.Copy(io.Discard, out)
	if err != nil {
		return "read", err
	}
	if err := s.Wait(); err != nil {
		var ee *gossh.ExitError
		if errors.As(err, &ee) {
			return fmt.Sprintf("exit %d", ee.ExitStatus()), fmt.Errorf("%w (stderr %.200q)", err, stderr.String())
		}
		return "wait", fmt.Errorf("%w (stderr %.200q)", err, stderr.String())
	}
	if n != size {
		return "short output", fmt.Errorf("read %d bytes, want %d", n, size)
	}
	return "", nil
}
