package sshgw

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// fakeTarget is an x/crypto SSH server standing in for a target's sshd. It
// accepts only certificates from the gateway's user CA, runs a few fake
// commands, and records what reached it, so tests can assert that the
// gateway's policy held.
type fakeTarget struct {
	addr    string
	hostKey gossh.Signer // what it presents (a plain key or a cert signer)
	ln      net.Listener

	mu    sync.Mutex
	certs []*gossh.Certificate
	seen  []string // request types and channel types received
	env   []string
	// sftpServer, if set, is the program the sftp subsystem runs (the
	// real OpenSSH sftp-server); otherwise subsystems echo lines.
	sftpServer string
}

func newSigner(t testing.TB) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startFakeTarget starts a target trusting userCA and presenting hostKey.
func startFakeTarget(t testing.TB, userCA gossh.PublicKey, hostKey gossh.Signer) *fakeTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ft := &fakeTarget{addr: ln.Addr().String(), hostKey: hostKey, ln: ln}
	checker := &gossh.CertChecker{
		IsUserAuthority: func(auth gossh.PublicKey) bool { return bytes.Equal(auth.Marshal(), userCA.Marshal()) },
	}
	cfg := &gossh.ServerConfig{
		PublicKeyCallback: func(meta gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			p, err := checker.Authenticate(meta, key)
			if err != nil {
				return nil, err
			}
			ft.mu.Lock()
			ft.certs = append(ft.certs, key.(*gossh.Certificate))
			ft.mu.Unlock()
			return p, nil
		},
	}
	cfg.AddHostKey(hostKey)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go ft.serve(nc, cfg)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ft
}

func (ft *fakeTarget) note(s string) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.seen = append(ft.seen, s)
}

func (ft *fakeTarget) saw(s string) bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for _, v := range ft.seen {
		if v == s {
			return true
		}
	}
	return false
}

func (ft *fakeTarget) lastCert() *gossh.Certificate {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if len(ft.certs) == 0 {
		return nil
	}
	return ft.certs[len(ft.certs)-1]
}

func (ft *fakeTarget) serve(nc net.Conn, cfg *gossh.ServerConfig) {
	sc, chans, reqs, err := gossh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go func() {
		for r := range reqs {
			ft.note("global " + r.Type)
			_ = r.Reply(r.Type == "tcpip-forward" || r.Type == "cancel-tcpip-forward", nil)
		}
	}()
	for ch := range chans {
		ft.note("channel " + ch.ChannelType())
		switch ch.ChannelType() {
		case "session":
			go ft.session(sc, ch)
		case "direct-tcpip":
			go ft.direct(ch)
		default:
			_ = ch.Reject(gossh.UnknownChannelType, "no")
		}
	}
}

// direct connects a direct-tcpip channel to its real destination.
func (ft *fakeTarget) direct(nc gossh.NewChannel) {
	var p directTCPIP
	if err := gossh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(gossh.ConnectionFailed, "bad")
		return
	}
	dst, err := net.Dial("tcp", net.JoinHostPort(p.DestAddr, strconv.Itoa(int(p.DestPort))))
	if err != nil {
		_ = nc.Reject(gossh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		dst.Close()
		return
	}
	go gossh.DiscardRequests(reqs)
	go func() { _, _ = io.Copy(dst, ch); dst.(*net.TCPConn).CloseWrite() }()
	_, _ = io.Copy(ch, dst)
	ch.Close()
	dst.Close()
}

// session runs one fake session: exec commands "echo X", "exit N",
// "stderr X", "cat", "env", "whoami", or a line-echoing shell/subsystem.
func (ft *fakeTarget) session(sc *gossh.ServerConn, nc gossh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	var env []string
	for r := range reqs {
		ft.note("request " + r.Type)
		switch r.Type {
		case "env":
			var p struct{ Name, Value string }
			_ = gossh.Unmarshal(r.Payload, &p)
			env = append(env, p.Name+"="+p.Value)
			ft.mu.Lock()
			ft.env = append(ft.env, p.Name+"="+p.Value)
			ft.mu.Unlock()
			_ = r.Reply(true, nil)
		case "exec":
			var p struct{ Command string }
			_ = gossh.Unmarshal(r.Payload, &p)
			_ = r.Reply(true, nil)
			status := ft.run(sc, ch, p.Command, env)
			_, _ = ch.SendRequest("exit-status", false, gossh.Marshal(struct{ S uint32 }{status}))
			return
		case "subsystem":
			ft.mu.Lock()
			server := ft.sftpServer
			ft.mu.Unlock()
			if server == "" {
				ft.echoLines(ch, r, reqs)
				return
			}
			_ = r.Reply(true, nil)
			go gossh.DiscardRequests(reqs)
			cmd := exec.Command(server)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
			status := uint32(0)
			if err := cmd.Run(); err != nil {
				status = 1
			}
			_ = ch.CloseWrite()
			_, _ = ch.SendRequest("exit-status", false, gossh.Marshal(struct{ S uint32 }{status}))
			return
		case "shell":
			ft.echoLines(ch, r, reqs)
			return
		default:
			_ = r.Reply(true, nil) // the target allows anything: the gateway must filter
		}
	}
}

// echoLines runs a line-echoing shell or subsystem.
func (ft *fakeTarget) echoLines(ch gossh.Channel, r *gossh.Request, reqs <-chan *gossh.Request) {
	_ = r.Reply(true, nil)
	go gossh.DiscardRequests(reqs)
	sc := bufio.NewScanner(ch)
	for sc.Scan() {
		fmt.Fprintf(ch, "echo: %s\n", sc.Text())
	}
	_ = ch.CloseWrite()
	_, _ = ch.SendRequest("exit-status", false, gossh.Marshal(struct{ S uint32 }{0}))
}

func (ft *fakeTarget) run(sc *gossh.ServerConn, ch gossh.Channel, cmd string, env []string) uint32 {
	verb, arg, _ := strings.Cut(cmd, " ")
	switch verb {
	case "echo":
		fmt.Fprintln(ch, arg)
	case "exit":
		n, _ := strconv.Atoi(arg)
		return uint32(n)
	case "stderr":
		fmt.Fprintln(ch.Stderr(), arg)
	case "cat":
		_, _ = io.Copy(ch, ch)
	case "read": // reads its input and says only how much
		n, _ := io.Copy(io.Discard, ch)
		fmt.Fprintf(ch, "read %d bytes\n", n)
	case "text": // writes N bytes of log-like text
		n, _ := strconv.Atoi(arg)
		line := "2026-01-02T15:04:05Z web-1 GET /api/v1/items?page=3 200 12.5ms user=alice\r\n"
		buf := []byte(strings.Repeat(line, (32<<10)/len(line)+1)[:32<<10])
		for n > 0 {
			k, err := ch.Write(buf[:min(n, len(buf))])
			if err != nil {
				return 1
			}
			n -= k
		}
	case "env":
		fmt.Fprintln(ch, strings.Join(env, " "))
	case "whoami":
		fmt.Fprintln(ch, sc.User())
	case "sleep":
		d, _ := time.ParseDuration(arg)
		time.Sleep(d)
	default:
		fmt.Fprintln(ch.Stderr(), "unknown command")
		return 127
	}
	return 0
}
