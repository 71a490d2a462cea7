package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/control"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/recording"
)

// controlPath is the admin socket inside data_dir.
func controlPath(cfg *config.Config) string {
	return filepath.Join(cfg.DataDir, control.SocketName)
}

// adminOps builds the admin commands over the process's identity
// components. serve offers them on the control socket; with no server
// running, the CLI runs the same ops on the store itself.
func adminOps(cfg *config.Config, id *identityParts) map[string]control.Op {
	locks, invites := id.locks, id.invites
	return map[string]control.Op{
		"lock": func(ctx context.Context, args []string) (string, error) {
			if len(args) != 2 {
				return "", errors.New("lock takes USER and a reason")
			}
			if err := locks.Lock(ctx, args[0], control.Caller(ctx), args[1]); err != nil {
				return "", err
			}
			return fmt.Sprintf("locked %s: sessions revoked, SSH keys unbound, live connections told to close\n", args[0]), nil
		},
		"unlock": func(ctx context.Context, args []string) (string, error) {
			if len(args) != 1 {
				return "", errors.New("unlock takes USER")
			}
			if err := locks.Unlock(ctx, args[0], control.Caller(ctx)); err != nil {
				return "", err
			}
			return fmt.Sprintf("unlocked %s\n", args[0]), nil
		},
		"enroll-link": func(ctx context.Context, args []string) (string, error) {
			if len(args) != 1 {
				return "", errors.New("enroll-link takes USER")
			}
			tok, err := invites.Create(ctx, args[0])
			if err != nil {
				return "", err
			}
			base := strings.TrimSuffix(cfg.PublicURL, "/")
			return fmt.Sprintf("%s/enroll/%s\n(single use, valid for %s; send it to %s only)\n", base, tok, identity.InviteTTL, args[0]), nil
		},
	}
}

// runAdmin runs op (an admin or a recording operation) on the deployment
// cfg describes: through the running server when there is one, otherwise
// directly on the store, audit log and recordings.
func runAdmin(ctx context.Context, cfg *config.Config, op string, args []string, stderr io.Writer) (string, error) {
	out, err := control.Call(ctx, controlPath(cfg), op, args)
	if !errors.Is(err, control.ErrNoServer) {
		if err != nil && strings.Contains(err.Error(), "unknown command") {
			return out, fmt.Errorf("the running server does not offer %s: stop serve or run this on a server that does (%w)", op, err)
		}
		return out, err
	}
	st, err := openStoreDirect(cfg)
	if err != nil {
		return "", err
	}
	defer st.Close()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	al, err := openAudit(cfg, io.Discard, logger)
	if err != nil {
		return "", err
	}
	defer al.Close()
	id, err := newIdentity(ctx, deps{cfg: cfg, store: st, audit: al, logger: logger})
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	rec, err := recording.New(recorderConfig(cfg, st, al, logger, host))
	if err != nil {
		return "", err
	}
	ops := adminOps(cfg, id)
	maps.Copy(ops, recordingOps(cfg, rec, id, al))
	caller := control.CallerForUID(uint32(os.Getuid()))
	return ops[op](control.WithCaller(ctx, caller), args)
}

// adminCommand returns the function of an admin subcommand that takes
// --config and exactly one USER argument (flags before it, as Go's flag
// package parses them).
func adminCommand(op string) func(args []string, stdout, stderr io.Writer) int {
	return func(args []string, stdout, stderr io.Writer) int {
		fs := flag.NewFlagSet(op, flag.ContinueOnError)
		fs.SetOutput(stderr)
		path := fs.String("config", "", "config `FILE` of the deployment")
		var reason *string
		if op == "lock" {
			reason = fs.String("reason", "locked by an administrator", "why, for the audit log")
		}
		synopsis := fmt.Sprintf("usage: gatehouse %s --config FILE USER", op)
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if *path == "" || fs.NArg() != 1 {
			fmt.Fprintln(stderr, synopsis)
			return 2
		}
		cfg, ok := loadConfig(*path, stderr)
		if !ok {
			return 1
		}
		opArgs := []string{fs.Arg(0)}
		if reason != nil {
			opArgs = append(opArgs, *reason)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := runAdmin(ctx, cfg, op, opArgs, stderr)
		fmt.Fprint(stdout, out)
		if err != nil {
			fmt.Fprintf(stderr, "gatehouse %s: %v\n", op, err)
			return 1
		}
		return 0
	}
}

// serveControl starts the control socket for a running server, over the
// server's identity components.
func serveControl(cfg *config.Config, id *identityParts, rec *recording.Recorder, al auditLog, logger *slog.Logger) (*control.Server, net.Listener, error) {
	ops := adminOps(cfg, id)
	if rec != nil {
		maps.Copy(ops, recordingOps(cfg, rec, id, al))
	}
	ln, err := control.Listen(controlPath(cfg))
	if err != nil {
		return nil, nil, err
	}
	return &control.Server{Ops: ops, Logger: logger}, ln, nil
}
