// Command demoupstream is the web application behind Gatehouse in `make
// demo`: a page that shows who Gatehouse says the visitor is (the
// X-Gatehouse-* identity headers), whether the signed JWT assertion
// verifies against Gatehouse's JWKS, and the path and query it received,
// plus a WebSocket echo at /ws. It trusts nothing a client could forge:
// the headers are shown as "claimed" and only the verified assertion
// counts. It listens on loopback only.
//
// Usage:
//
//	demoupstream -listen 127.0.0.1:8081 -issuer https://gate.localhost:8443 \
//	    -audience demo-app -jwks-dial 127.0.0.1:8443 -jwks-root DATA_DIR/tls/self-signed.crt
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "demoupstream:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("demoupstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "loopback address to listen on")
	issuer := fs.String("issuer", "", "Gatehouse's public_url: the assertion's iss, and where /.well-known/jwks.json is")
	audience := fs.String("audience", "demo-app", "the route name: the assertion's aud")
	dial := fs.String("jwks-dial", "", "host:port to connect to for the JWKS instead of resolving the issuer's host (e.g. gate.localhost, which Go does not resolve)")
	root := fs.String("jwks-root", "", "PEM file of the certificate to trust for the JWKS (Gatehouse's self-signed certificate or its CA); empty: system roots")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	host, _, err := net.SplitHostPort(*listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %q: must be a loopback IP and port (the demo app believes Gatehouse's headers)", *listen)
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	var v *verifier
	if *issuer != "" {
		client, err := jwksClient(*dial, *root)
		if err != nil {
			return err
		}
		v = newVerifier(*issuer, *audience, client)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           &app{verifier: v, logger: logger},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("demo upstream listening", "addr", ln.Addr().String(), "issuer", *issuer, "audience", *audience)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// jwksClient returns the HTTP client for JWKS fetches: it trusts rootFile
// (if set) instead of the system roots, and connects to dial (if set)
// whatever host the URL names, keeping that host for SNI and verification.
func jwksClient(dial, rootFile string) (*http.Client, error) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}, MaxIdleConns: 2}
	if rootFile != "" {
		pemData, err := os.ReadFile(rootFile)
		if err != nil {
			return nil, fmt.Errorf("-jwks-root: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("-jwks-root %s: no PEM certificate", rootFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if dial != "" {
		d := &net.Dialer{Timeout: 5 * time.Second}
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, dial)
		}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}
