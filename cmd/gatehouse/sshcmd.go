package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/sshgw"
)

// cmdSSHConfig is `gatehouse ssh-config --config FILE [--user-ca]`.
func cmdSSHConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ssh-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config `FILE`")
	userCA := fs.Bool("user-ca", false, "print only the user CA public key (for targets' TrustedUserCAKeys)")
	if code, ok := parseFlags(fs, args, "ssh-config --config FILE [--user-ca]"); !ok {
		return code
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return 1
	}
	// The keys are sealed: open (before serve ever ran: create) the master
	// key and, with Redis, the store that holds them.
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	v, closeKeys, err := openKeyVault(cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse:", err)
		return 1
	}
	defer closeKeys()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out string
	if *userCA {
		out, err = sshgw.UserCAPublicKey(ctx, v)
		out += "\n"
	} else {
		out, err = sshgw.SSHConfig(ctx, cfg, v)
	}
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse:", err)
		return 1
	}
	fmt.Fprint(stdout, out)
	return 0
}

// startSSH builds the SSH bastion over the process's identity components
// (d.ident) and opens its listener.
func startSSH(d deps) (*sshgw.Server, net.Listener, error) {
	id := d.ident
	keys := keyVault(d.cfg, d.store, d.secrets, d.logger)
	if keys == nil {
		// Never fall back to data_dir: replicas would get different keys.
		return nil, nil, errors.New("sshgw: no key vault (master keyring or store missing)")
	}
	srv, err := sshgw.New(sshgw.Config{Cfg: d.cfg, KeyVault: keys, Store: d.store, Approvals: id.approvals, Keys: id.keys, Locks: id.locks,
		Audit: d.audit, Logger: d.logger.With("component", "sshgw"), Metrics: d.metrics,
		Recorder: sshRecorder(d.rec)})
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", d.cfg.Listen.SSH)
	if err != nil {
		return nil, nil, fmt.Errorf("listen ssh %s: %w", d.cfg.Listen.SSH, err)
	}
	return srv, ln, nil
}

// sshRecorder is rec as the bastion's recorder; nil (no recording, so
// targets that require it are refused) when there is none.
func sshRecorder(rec *recording.Recorder) sshgw.Recorder {
	if rec == nil {
		return nil
	}
	return sshgw.Recording(rec.Start)
}
