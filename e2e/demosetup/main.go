// Command demosetup prepares and checks the pieces of `make demo` for
// scripts/demo.sh, so the script needs no openssl, python or curl:
//
//	demosetup init -dir DIR -template configs/demo.yaml -login LOGIN
//	    picks free loopback ports; makes a throwaway CA with a certificate
//	    for Dex (127.0.0.1), a random demo password and OIDC client secret,
//	    the Dex config, an sshd target (Ed25519 host key, sshd_config), an
//	    SSH client key, and DIR/gatehouse.yaml rendered from the template's
//	    ${VARS}; then writes DIR/demo.env (shell variables) for the script.
//	demosetup spki CERT.pem...
//	    prints the base64 SHA-256 SPKI hashes of the first certificate of
//	    each file, comma-separated (Chromium's
//	    --ignore-certificate-errors-spki-list).
//	demosetup wait [-timeout 60s] [-tls-root FILE] URL|tcp://HOST:PORT...
//	    waits until every URL answers 200 (HTTPS verified against
//	    -tls-root if given) or every TCP address accepts connections.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: demosetup init|spki|wait ...")
		return 2
	}
	var err error
	switch args[0] {
	case "init":
		err = cmdInit(args[1:], stderr)
	case "spki":
		err = cmdSPKI(args[1:], stdout)
	case "wait":
		err = cmdWait(args[1:], stderr)
	default:
		fmt.Fprintf(stderr, "demosetup: unknown command %q\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "demosetup:", err)
		return 1
	}
	return 0
}
