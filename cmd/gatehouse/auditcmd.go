package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
)

// auditPath is the audit log file inside data_dir.
func auditPath(cfg *config.Config) string {
	return filepath.Join(cfg.DataDir, "audit", "audit.log")
}

func cmdAudit(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "usage: gatehouse audit verify --config FILE")
		return 2
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config `FILE` naming the data_dir")
	if code, ok := parseFlags(fs, args[1:], "audit verify --config FILE"); !ok {
		return code
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return 1
	}
	file := auditPath(cfg)
	n, err := audit.VerifyFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", file, err)
		return 1
	}
	fmt.Fprintf(stdout, "%d lines, chain intact\n", n)
	return 0
}

// auditLog is the part of *audit.Log that serve uses.
type auditLog interface {
	Log(ctx context.Context, ev audit.Event) error
}

// openAudit opens the audit log in data_dir with the sinks cfg names.
func openAudit(cfg *config.Config, stdout io.Writer, logger *slog.Logger) (*audit.Log, error) {
	// The alerter turns suspicious patterns into "alert" events in the
	// same chain and sinks.
	opts := audit.Options{Logger: logger, Alerter: audit.NewAlerter(alertOptions(cfg.Audit.Alerts))}
	if host, err := os.Hostname(); err == nil {
		opts.Replica = host
	}
	if cfg.Audit.Stdout {
		opts.Stdout = stdout
	}
	if w := cfg.Audit.Webhook; w != nil {
		secret, err := os.ReadFile(w.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("audit.webhook.secret_file: %w", err)
		}
		s := strings.TrimSpace(string(secret))
		if s == "" {
			return nil, fmt.Errorf("audit.webhook.secret_file %s: empty", w.SecretFile)
		}
		opts.Webhook = &audit.WebhookOptions{URL: w.URL, Secret: []byte(s)}
	}
	if sl := cfg.Audit.Syslog; sl != nil {
		opts.Syslog = &audit.SyslogOptions{Network: sl.Network, Address: sl.Address, Tag: sl.Tag}
	}
	l, err := audit.New(auditPath(cfg), opts)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return l, nil
}

// alertOptions maps audit.alerts (defaults resolved by config) to the
// alerter's rules, naming the event types each rule watches.
func alertOptions(a config.Alerts) audit.AlertOptions {
	return audit.AlertOptions{
		Failures: a.Failures, FailureWindow: a.FailureWindow.D(),
		// An approval refused to its approver (wrong code, locked) and a
		// WebAuthn assertion that failed are the person's failures.
		FailureTypes: []string{identity.EventApproval, identity.EventAssert},
		Denials:      a.Denials, DenialWindow: a.DenialWindow.D(),
		ImmediateTypes: map[string]string{
			identity.EventClonedKey: audit.RuleKeyCounter,
			eventRecordingVerify:    audit.RuleRecording,
		},
		RepeatAfter: a.RepeatAfter.D(),
	}
}
