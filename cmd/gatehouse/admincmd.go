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
	"slices"
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
		"lock-key":      lockOp(cfg, locks, identity.KeyLock),
		"lock-target":   lockOp(cfg, locks, identity.TargetLock),
		"unlock-key":    unlockOp(locks, identity.KeyLock),
		"unlock-target": unlockOp(locks, identity.TargetLock),
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
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := openStoreDirect(cfg, logger)
	if err != nil {
		return "", err
	}
	defer st.Close()
	al, err := openAudit(cfg, io.Discard, logger)
	if err != nil {
		return "", err
	}
	defer al.Close()
	kr, err := openSecrets(cfg, logger)
	if err != nil {
		return "", err
	}
	id, err := newIdentity(ctx, deps{cfg: cfg, store: st, audit: al, logger: logger, secrets: kr})
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	rec, err := recording.New(recorderConfig(cfg, st, kr, al, logger, host))
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
// package parses them). lock and unlock take --key FINGERPRINT or
// --target NAME instead of USER.
func adminCommand(op string) func(args []string, stdout, stderr io.Writer) int {
	return func(args []string, stdout, stderr io.Writer) int {
		fs := flag.NewFlagSet(op, flag.ContinueOnError)
		fs.SetOutput(stderr)
		path := fs.String("config", "", "config `FILE` of the deployment")
		var reason, key, target *string
		if op == "lock" {
			reason = fs.String("reason", "locked by an administrator", "why, for the audit log")
		}
		synopsis := fmt.Sprintf("usage: gatehouse %s --config FILE USER", op)
		if op == "lock" || op == "unlock" {
			key = fs.String("key", "", "lock an SSH key instead of a person: its `SHA256:FINGERPRINT` as ssh-keygen -lf prints it")
			target = fs.String("target", "", "lock a configured target instead of a person: its `NAME`")
			synopsis = fmt.Sprintf("usage: gatehouse %s --config FILE [--reason R] USER | --key SHA256:FINGERPRINT | --target NAME", op)
			if op == "unlock" {
				synopsis = "usage: gatehouse unlock --config FILE USER | --key SHA256:FINGERPRINT | --target NAME"
			}
		}
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		opName, subject, ok := lockSubject(op, fs, key, target)
		if *path == "" || !ok {
			fmt.Fprintln(stderr, synopsis)
			return 2
		}
		cfg, ok := loadConfig(*path, stderr)
		if !ok {
			return 1
		}
		opArgs := []string{subject}
		if reason != nil {
			opArgs = append(opArgs, *reason)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := runAdmin(ctx, cfg, opName, opArgs, stderr)
		fmt.Fprint(stdout, out)
		if err != nil {
			fmt.Fprintf(stderr, "gatehouse %s: %v\n", op, err)
			return 1
		}
		return 0
	}
}

// lockSubject picks the control op and its subject: USER (the one
// argument), or --key or --target (then no argument); exactly one of them.
func lockSubject(op string, fs *flag.FlagSet, key, target *string) (opName, subject string, ok bool) {
	var given []string
	if fs.NArg() == 1 {
		opName, subject = op, fs.Arg(0)
		given = append(given, "USER")
	} else if fs.NArg() > 1 {
		return "", "", false
	}
	if key != nil && *key != "" {
		opName, subject = op+"-key", *key
		given = append(given, "--key")
	}
	if target != nil && *target != "" {
		opName, subject = op+"-target", *target
		given = append(given, "--target")
	}
	return opName, subject, len(given) == 1
}

// lockOp is the control op that locks an SSH key or a target (ref makes
// the lock from args[0]); a target must be one the config lists.
func lockOp(cfg *config.Config, locks *identity.Locks, ref func(string) identity.LockRef) control.Op {
	return func(ctx context.Context, args []string) (string, error) {
		if len(args) != 2 {
			return "", errors.New("lock takes the key or target and a reason")
		}
		r := ref(args[0])
		if r.Kind == identity.LockTarget && !slices.ContainsFunc(cfg.Targets, func(t config.Target) bool { return t.Name == r.Name }) {
			return "", fmt.Errorf("no target %q in the config", r.Name)
		}
		if err := locks.Place(ctx, r, control.Caller(ctx), args[1]); err != nil {
			return "", err
		}
		return fmt.Sprintf("locked %s: new SSH connections refused, live ones told to close\n", r), nil
	}
}

// unlockOp is the control op that lifts the lock on a key or a target. A
// target no longer in the config can still be unlocked.
func unlockOp(locks *identity.Locks, ref func(string) identity.LockRef) control.Op {
	return func(ctx context.Context, args []string) (string, error) {
		if len(args) != 1 {
			return "", errors.New("unlock takes the key or target")
		}
		r := ref(args[0])
		if err := locks.Lift(ctx, r, control.Caller(ctx)); err != nil {
			return "", err
		}
		return fmt.Sprintf("unlocked %s\n", r), nil
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
