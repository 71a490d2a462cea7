package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// cmdSPKI prints the SPKI hashes of the first certificate in each file.
func cmdSPKI(files []string, stdout io.Writer) error {
	if len(files) == 0 {
		return errors.New("spki: no files")
	}
	var hashes []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "CERTIFICATE" {
			return fmt.Errorf("%s: no PEM certificate", f)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
		hashes = append(hashes, base64.StdEncoding.EncodeToString(sum[:]))
	}
	_, err := fmt.Fprintln(stdout, strings.Join(hashes, ","))
	return err
}

// cmdWait waits until every target answers.
func cmdWait(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	root := fs.String("tls-root", "", "PEM file of the roots for https URLs (default: system roots)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	if *root != "" {
		data, err := os.ReadFile(*root)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return fmt.Errorf("%s: no PEM certificate", *root)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline := time.Now().Add(*timeout)
	for _, target := range fs.Args() {
		for {
			err := probe(client, target)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %v: %w", target, *timeout, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func probe(client *http.Client, target string) error {
	if addr, ok := strings.CutPrefix(target, "tcp://"); ok {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
	resp, err := client.Get(target)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}
