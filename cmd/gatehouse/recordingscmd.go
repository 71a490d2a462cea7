package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/recording"
)

// recordingsTimeout bounds one recordings command; export and play of a
// long session read the whole file.
const recordingsTimeout = 10 * time.Minute

// cmdRecordings dispatches `gatehouse recordings list|play|verify|export`.
func cmdRecordings(args []string, stdout, stderr io.Writer) int {
	subs := map[string]func([]string, io.Writer, io.Writer) int{
		"list": recList, "play": recPlay, "verify": recVerify, "export": recExport,
	}
	if len(args) == 0 || subs[args[0]] == nil {
		fmt.Fprintln(stderr, "usage: gatehouse recordings list|play|verify|export --config FILE ...")
		return 2
	}
	return subs[args[0]](args[1:], stdout, stderr)
}

// recFlags parses the flags of one recordings subcommand and loads the
// config; nargs is the number of positional arguments it takes.
func recFlags(fs *flag.FlagSet, args []string, synopsis string, nargs int, stderr io.Writer) (*config.Config, int, bool) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0, false
		}
		return nil, 2, false
	}
	if fs.Lookup("config").Value.String() == "" || fs.NArg() != nargs {
		fmt.Fprintf(stderr, "usage: gatehouse %s\n", synopsis)
		return nil, 2, false
	}
	cfg, ok := loadConfig(fs.Lookup("config").Value.String(), stderr)
	if !ok {
		return nil, 1, false
	}
	return cfg, 0, true
}

// runRec runs a recording op and prints its output; it returns the exit code.
func runRec(cfg *config.Config, name, op string, args []string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), recordingsTimeout)
	defer cancel()
	out, err := runAdmin(ctx, cfg, op, args, stderr)
	fmt.Fprint(stdout, out)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse %s: %v\n", name, err)
		return 1
	}
	return 0
}

func recList(args []string, stdout, stderr io.Writer) int {
	const synopsis = "recordings list --config FILE [--user U] [--target T] [--login L] [--status S] [--since TIME] [--until TIME] [--query WORDS] [--limit N] [--json]"
	fs := flag.NewFlagSet("recordings list", flag.ContinueOnError)
	fs.String("config", "", "config `FILE` of the deployment")
	var f recording.Filter
	fs.StringVar(&f.User, "user", "", "only this person (email)")
	fs.StringVar(&f.Target, "target", "", "only this target")
	fs.StringVar(&f.Login, "login", "", "only this login")
	fs.StringVar(&f.Status, "status", "", "live, complete or incomplete")
	fs.StringVar(&f.Query, "query", "", "words that must all occur in the commands or output")
	fs.IntVar(&f.Limit, "limit", 0, "at most N, newest first (0: all)")
	since := fs.String("since", "", "started at or after `TIME` (RFC 3339, YYYY-MM-DD, or a duration ago: 24h, 7d)")
	until := fs.String("until", "", "started before `TIME`")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	cfg, code, ok := recFlags(fs, args, synopsis, 0, stderr)
	if !ok {
		return code
	}
	var err error
	now := time.Now()
	if f.Since, err = parseTime(*since, now); err == nil {
		f.Until, err = parseTime(*until, now)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse recordings list: %v\n", err)
		return 2
	}
	fb, _ := json.Marshal(f)
	var out strings.Builder
	if code := runRec(cfg, "recordings list", opRecList, []string{string(fb)}, &out, stderr); code != 0 {
		return code
	}
	if *asJSON {
		fmt.Fprint(stdout, out.String())
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTART\tDURATION\tSTATUS\tUSER\tTARGET\tLOGIN\tKIND")
	dec := json.NewDecoder(strings.NewReader(out.String()))
	for {
		var m recording.Meta
		if err := dec.Decode(&m); err != nil {
			break
		}
		dur := "-"
		if !m.End.IsZero() {
			dur = m.End.Sub(m.Start).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Start.Local().Format(time.DateTime), dur, m.Status, m.User, m.Target, m.Login, m.Kind)
	}
	tw.Flush()
	return 0
}

// parseTime reads RFC 3339, a date, or a duration ago ("24h", "7d").
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if d, err := config.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("invalid time %q (want RFC 3339, YYYY-MM-DD, or a duration ago such as 24h or 7d)", s)
}

func recVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("recordings verify", flag.ContinueOnError)
	fs.String("config", "", "config `FILE` of the deployment")
	cfg, code, ok := recFlags(fs, args, "recordings verify --config FILE ID", 1, stderr)
	if !ok {
		return code
	}
	return runRec(cfg, "recordings verify", opRecVerify, []string{fs.Arg(0)}, stdout, stderr)
}

func recExport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("recordings export", flag.ContinueOnError)
	fs.String("config", "", "config `FILE` of the deployment")
	outPath := fs.String("o", "", "write the asciicast v2 file to `FILE`")
	cfg, code, ok := recFlags(fs, args, "recordings export --config FILE -o FILE ID", 1, stderr)
	if !ok {
		return code
	}
	if *outPath == "" {
		fmt.Fprintln(stderr, "usage: gatehouse recordings export --config FILE -o FILE ID")
		return 2
	}
	src, code := fetchCast(cfg, "recordings export", fs.Arg(0), "export", stdout, stderr)
	if code != 0 {
		return code
	}
	defer os.Remove(src)
	if err := copyFile(src, *outPath); err != nil {
		fmt.Fprintf(stderr, "gatehouse recordings export: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s\n", *outPath)
	return 0
}

// fetchCast has the recording's asciicast written to a private temporary
// file in data_dir and returns its path. Through a running server, the
// server writes it there: data_dir is the one directory both processes
// see (a service's /tmp may be private), and a file has no size limit,
// unlike a reply on the control socket.
func fetchCast(cfg *config.Config, name, id, purpose string, stdout, stderr io.Writer) (string, int) {
	tmp, err := os.CreateTemp(cfg.DataDir, ".cast-*.tmp")
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse %s: %v\n", name, err)
		return "", 1
	}
	tmp.Close()
	if code := runRec(cfg, name, opRecExport, []string{id, tmp.Name(), purpose}, stdout, stderr); code != 0 {
		os.Remove(tmp.Name())
		return "", code
	}
	return tmp.Name(), 0
}

// copyFile copies src to a new or truncated dst, mode 0600: a decrypted
// recording is as sensitive as the session was.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func recPlay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("recordings play", flag.ContinueOnError)
	fs.String("config", "", "config `FILE` of the deployment")
	speed := fs.Float64("speed", 1, "playback speed")
	noWait := fs.Bool("no-wait", false, "print the output at once, without the pauses")
	cfg, code, ok := recFlags(fs, args, "recordings play --config FILE [--speed N] [--no-wait] ID", 1, stderr)
	if !ok {
		return code
	}
	if *speed <= 0 {
		fmt.Fprintln(stderr, "gatehouse recordings play: --speed must be positive")
		return 2
	}
	src, code := fetchCast(cfg, "recordings play", fs.Arg(0), "play", stdout, stderr)
	if code != 0 {
		return code
	}
	defer os.Remove(src)
	f, err := os.Open(src)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse recordings play: %v\n", err)
		return 1
	}
	defer f.Close()
	if err := recording.Replay(context.Background(), f, stdout, recording.ReplayOptions{Speed: *speed, NoWait: *noWait}); err != nil {
		fmt.Fprintf(stderr, "gatehouse recordings play: %v\n", err)
		return 1
	}
	return 0
}

func cmdPurge(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("purge", flag.ContinueOnError)
	fs.String("config", "", "config `FILE` of the deployment")
	cfg, code, ok := recFlags(fs, args, "purge --config FILE USER", 1, stderr)
	if !ok {
		return code
	}
	return runRec(cfg, "purge", opPurge, []string{fs.Arg(0)}, stdout, stderr)
}
