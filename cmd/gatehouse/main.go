// Command gatehouse is Gatehouse's single binary: the identity-aware HTTPS
// proxy and SSH bastion (serve), and the commands that check its config and
// act on a deployment. This package holds flags, subcommands, wiring and
// signals, nothing else.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand: its name, a one-line summary and its function,
// which returns the process exit code.
type command struct {
	name, usage, summary string
	run                  func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "serve --config FILE", "run everything FILE configures", cmdServe},
		{"check-config", "check-config --config FILE", "validate FILE and print every problem", cmdCheckConfig},
		{"audit", "audit verify --config FILE", "verify the audit log's hash chain", cmdAudit},
		{"lock", "lock --config FILE [--reason R] USER|--key FP|--target NAME", "lock USER out (revoke sessions, unbind keys), or an SSH key or a target; cut live connections", adminCommand("lock")},
		{"unlock", "unlock --config FILE USER|--key FP|--target NAME", "lift the lock on USER, a key or a target", adminCommand("unlock")},
		{"report", "report --config FILE --user USER --since TIME [--json] [--audit-log FILE ...]", "list what USER accessed since TIME (routes, targets, sign-ins, approvals, sessions and recordings)", cmdReport},
		{"enroll-link", "enroll-link --config FILE USER", "print a one-time link for USER's first security key", adminCommand("enroll-link")},
		{"recordings", "recordings list|play|verify|export --config FILE ...", "list, replay, verify or export recorded sessions", cmdRecordings},
		{"purge", "purge --config FILE USER", "delete USER's recordings (unless on legal hold), sessions, keys and security keys", cmdPurge},
		{"ssh-config", "ssh-config --config FILE [--user-ca]", "print the ssh_config block and @cert-authority line (or the user CA key)", cmdSSHConfig},
		{"rekey", "rekey --config FILE", "seal every key at rest again with secrets.master_key_file (after a master key rotation)", cmdRekey},
		{"migrate-store", "migrate-store --config FILE --to-redis ADDR [--password-file F] [--db N]", "copy the embedded store (keys and expiries) into an empty Redis; refuses while serve runs", cmdMigrateStore},
		{"help", "help", "list the commands", nil},
	}
}

// run dispatches args and returns the exit code: 0 success, 1 failure, 2
// usage error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] && c.run != nil {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: gatehouse COMMAND [flags] [arguments]")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-30s %s\n", c.usage, c.summary)
	}
	fmt.Fprintln(w, "\nFlags come before positional arguments.")
}
