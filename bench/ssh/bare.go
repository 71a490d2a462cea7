package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	gossh "golang.org/x/crypto/ssh"
)

// The "bare x/crypto" path is an SSH relay on golang.org/x/crypto/ssh as
// the library gives it, with Go's default GC: it accepts the bench
// key, opens one connection to the target per client connection with the
// same key, and copies each session channel's requests and bytes both
// ways (256 KiB copy buffers, as Gatehouse's relay reads). No
// authorization, certificates, recording, policy or audit. It separates
// Gatehouse's own per-byte work from x/crypto's, the way bench/http's
// bare net/http does for HTTPS. It runs as this program's "bare"
// subcommand, in a cgroup of its own like every other server.

// bareRole is the bare relay's name in the CPU tables, barePath its path's.
const (
	bareRole = "bare"
	barePath = "bare x/crypto"
)

// bareCiphers is what Gatehouse negotiates on both legs.
var bareCiphers = []string{"aes128-gcm@openssh.com"}

func runBare(args []string) int {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	listen := fs.String("listen", "", "`address` to listen on")
	hostKey := fs.String("host-key", "", "host key `FILE`")
	userKey := fs.String("key", "", "the bench user's private key `FILE` (accepted from clients, used towards the target)")
	target := fs.String("target", "", "target `address`")
	targetKey := fs.String("target-key", "", "the target's host public key `FILE`")
	login := fs.String("login", "", "login on the target")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := serveBare(*listen, *hostKey, *userKey, *target, *targetKey, *login); err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		return 1
	}
	return 0
}

func serveBare(listen, hostKeyFile, userKeyFile, target, targetKeyFile, login string) error {
	readSigner := func(f string) (gossh.Signer, error) {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		return gossh.ParsePrivateKey(b)
	}
	host, err := readSigner(hostKeyFile)
	if err != nil {
		return err
	}
	user, err := readSigner(userKeyFile)
	if err != nil {
		return err
	}
	tb, err := os.ReadFile(targetKeyFile)
	if err != nil {
		return err
	}
	targetKey, _, _, _, err := gossh.ParseAuthorizedKey(tb)
	if err != nil {
		return err
	}
	userPub := string(user.PublicKey().Marshal())
	srv := &gossh.ServerConfig{
		Config: gossh.Config{Ciphers: bareCiphers},
		PublicKeyCallback: func(_ gossh.ConnMetadata, k gossh.PublicKey) (*gossh.Permissions, error) {
			if string(k.Marshal()) != userPub {
				return nil, errors.New("not the bench key")
			}
			return nil, nil
		},
	}
	srv.AddHostKey(host)
	cli := &gossh.ClientConfig{
		Config:          gossh.Config{Ciphers: bareCiphers},
		User:            login,
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(user)},
		HostKeyCallback: gossh.FixedHostKey(targetKey),
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; ln.Close() }()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return nil
		}
		go relayConn(nc, srv, cli, target)
	}
}

// relayConn serves one client connection until it ends.
func relayConn(nc net.Conn, srv *gossh.ServerConfig, cli *gossh.ClientConfig, target string) {
	defer nc.Close()
	sc, chans, reqs, err := gossh.NewServerConn(nc, srv)
	if err != nil {
		return
	}
	defer sc.Close()
	go gossh.DiscardRequests(reqs)
	tc, err := gossh.Dial("tcp", target, cli)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare: target:", err)
		return
	}
	defer tc.Close()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(gossh.UnknownChannelType, "sessions only")
			continue
		}
		go relaySession(nch, tc)
	}
}

// relaySession joins one client session channel to a new one on the
// target: requests both ways, stdin, stdout and stderr.
func relaySession(nch gossh.NewChannel, tc *gossh.Client) {
	tch, treqs, err := tc.OpenChannel("session", nil)
	if err != nil {
		_ = nch.Reject(gossh.ConnectionFailed, err.Error())
		return
	}
	cch, creqs, err := nch.Accept()
	if err != nil {
		tch.Close()
		return
	}
	forward := func(from <-chan *gossh.Request, to gossh.Channel) {
		for r := range from {
			ok, err := to.SendRequest(r.Type, r.WantReply, r.Payload)
			if err != nil {
				ok = false
			}
			if r.WantReply {
				_ = r.Reply(ok, nil)
			}
		}
	}
	go forward(creqs, tch)
	var out sync.WaitGroup
	out.Add(2)
	go func() {
		defer out.Done()
		copyBig(cch, tch)
	}()
	go func() {
		defer out.Done()
		copyBig(cch.Stderr(), tch.Stderr())
	}()
	go func() {
		copyBig(tch, cch)
		_ = tch.CloseWrite()
	}()
	// exit-status arrives on the target's requests; the target closes
	// its channel after it, and then the output is complete.
	forward(treqs, cch)
	out.Wait()
	_ = cch.Close()
	_ = tch.Close()
}

func copyBig(dst io.Writer, src io.Reader) {
	buf := make([]byte, 256<<10)
	_, _ = io.CopyBuffer(dst, src, buf)
}
