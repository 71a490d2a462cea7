package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/gatehouse-dev/gatehouse/config"
)

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config `FILE` to check")
	if code, ok := parseFlags(fs, args, "check-config --config FILE"); !ok {
		return code
	}
	if _, ok := loadConfig(*path, stderr); !ok {
		return 1
	}
	fmt.Fprintln(stdout, "config OK")
	return 0
}

// parseFlags parses args, requires --config and no positional arguments,
// and returns the exit code to use when it returns false.
func parseFlags(fs *flag.FlagSet, args []string, synopsis string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.Lookup("config").Value.String() == "" || fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "usage: gatehouse %s\n", synopsis)
		return 2, false
	}
	return 0, true
}

// loadConfig loads the config at path with config.LoadFile: defaults
// resolved, validated, and the files it names checked. check-config, serve,
// reload and the admin commands all come through here, so they refuse the
// same configs. On problems it prints each as "FILE:LINE: path: message"
// to stderr and reports false.
func loadConfig(path string, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.LoadFile(path)
	if err == nil {
		return cfg, true
	}
	var ps config.Problems
	if !errors.As(err, &ps) {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return nil, false
	}
	for _, p := range ps {
		fmt.Fprintln(stderr, formatProblem(path, p))
	}
	fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(ps))
	return nil, false
}

// formatProblem renders p the way compilers do: FILE:LINE: path: message.
func formatProblem(file string, p config.Problem) string {
	loc := file
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d", file, p.Line)
	}
	if p.Path == "" {
		return loc + ": " + p.Msg
	}
	return loc + ": " + p.Path + ": " + p.Msg
}
