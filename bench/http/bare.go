package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// The "bare net/http" target is a Go TLS reverse proxy as the standard
// library gives it: httputil.ReverseProxy (with pooled copy buffers) over
// http.Transport behind http.Server, HTTP/1.1 and HTTP/2, default GC, no
// sessions, no authorization, no logging, no metrics. It answers the
// question the ratios to nginx cannot: how much of Gatehouse's cost is
// Gatehouse's own work, and how much is the Go HTTP stack any Go proxy
// starts from. It runs in a process of its own (this program's "bare"
// subcommand), so its CPU is counted like every other target's.

// bareName is the target's name in the tables.
const bareName = "bare net/http"

// runBare serves the bare proxy until SIGTERM.
func runBare(args []string) int {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "TLS listen `address`")
	upstream := fs.String("upstream", "", "upstream base `URL` (http://...)")
	certFile := fs.String("cert", "", "certificate `FILE` (PEM)")
	keyFile := fs.String("key", "", "key `FILE` (PEM)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := serveBare(*listen, *upstream, *certFile, *keyFile); err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		return 1
	}
	return 0
}

func serveBare(listen, upstream, certFile, keyFile string) error {
	up, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	// The same upstream pool size Gatehouse and the nginx proxy keep, so
	// that no target reconnects where another reuses.
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
	}
	rp := &httputil.ReverseProxy{
		Rewrite:    func(r *httputil.ProxyRequest) { r.SetURL(up) },
		Transport:  tr,
		BufferPool: new(copyBuffers),
	}
	srv := &http.Server{
		Handler:           rp,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// copyBuffers pools ReverseProxy's 32 KiB copy buffers (without a pool it
// allocates one per response, as a naive proxy does).
type copyBuffers struct{ p sync.Pool }

func (c *copyBuffers) Get() []byte {
	if b, ok := c.p.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

func (c *copyBuffers) Put(b []byte) { c.p.Put(&b) }

// startBare runs the bare proxy on port, in front of the upstream's
// plain-HTTP port.
func startBare(dir, self string, port, upPort int, certFile, keyFile string) (*proc, error) {
	return start(dir, "bare", nil, self, "bare",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--upstream", fmt.Sprintf("http://127.0.0.1:%d", upPort),
		"--cert", certFile, "--key", keyFile)
}
