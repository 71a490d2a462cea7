package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/recording"
)

const reportSynopsis = "report --config FILE --user USER --since TIME [--json] [--audit-log FILE ...]"

// cmdReport prints everything a person accessed since a time, for
// notifying the people affected by an incident: from the local audit log
// and any other replicas' logs (--audit-log), each chain verified first,
// joined with the recordings index. Exit 1 means the report may be
// incomplete (a broken chain, an unreadable log or index); it is printed
// all the same, with the reasons on stderr.
func cmdReport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config `FILE` of the deployment")
	user := fs.String("user", "", "the person's `EMAIL`")
	since := fs.String("since", "", "from `TIME` on (RFC 3339, YYYY-MM-DD, or a duration ago: 72h, 7d)")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	var logs []string
	fs.Func("audit-log", "another replica's audit log `FILE` to include (repeatable)", func(s string) error {
		logs = append(logs, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *path == "" || strings.TrimSpace(*user) == "" || *since == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: gatehouse "+reportSynopsis)
		return 2
	}
	from, err := parseTime(*since, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse report: --since: %v\n", err)
		return 2
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return 1
	}
	q := reportQuery{user: strings.ToLower(strings.TrimSpace(*user)), since: from, hosts: routeHosts(cfg)}
	complete := true
	var events []audit.Event
	for _, file := range append([]string{auditPath(cfg)}, logs...) {
		evs, ok := readAuditLog(file, stderr)
		complete = complete && ok
		events = append(events, evs...)
	}
	metas, err := reportRecordings(cfg, q, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse report: recordings index: %v (recording IDs are missing from this report)\n", err)
		complete = false
	}
	rows := buildReport(q, events, metas)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range rows {
			_ = enc.Encode(r)
		}
	} else {
		printReport(stdout, rows)
	}
	if !complete {
		return 1
	}
	return 0
}

// routeHosts maps each route's host (lower case) to its name.
func routeHosts(cfg *config.Config) map[string]string {
	m := map[string]string{}
	for _, r := range cfg.Routes {
		m[strings.ToLower(r.Host)] = r.Name
	}
	return m
}

// readAuditLog verifies the hash chain of the audit log at file, as
// `gatehouse audit verify` does, says on stderr what it found, and returns
// its events. ok is false when the chain is broken or the file cannot be
// read: the events read are still returned, but they may be incomplete or
// altered.
func readAuditLog(file string, stderr io.Writer) ([]audit.Event, bool) {
	n, verr := audit.VerifyFile(file)
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse report: %v\n", err)
		return nil, false
	}
	defer f.Close()
	var evs []audit.Event
	bad := 0
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadBytes('\n')
		if len(strings.TrimSpace(string(line))) > 0 {
			var ev audit.Event
			if json.Unmarshal(line, &ev) != nil {
				bad++
			} else {
				evs = append(evs, ev)
			}
		}
		if err != nil {
			break
		}
	}
	switch {
	case verr != nil:
		fmt.Fprintf(stderr, "gatehouse report: %s: CHAIN BROKEN: %v; its events are included but may be incomplete or altered\n", file, verr)
	case bad > 0:
		fmt.Fprintf(stderr, "gatehouse report: %s: %d unreadable line(s)\n", file, bad)
	default:
		fmt.Fprintf(stderr, "%s: %d lines, chain intact\n", file, n)
	}
	return evs, verr == nil && bad == 0
}

// reportRecordings lists the person's recordings since q.since through the
// recordings list op (the running server's index, or the store directly).
func reportRecordings(cfg *config.Config, q reportQuery, stderr io.Writer) ([]recording.Meta, error) {
	fb, err := json.Marshal(recording.Filter{User: q.user, Since: q.since})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordingsTimeout)
	defer cancel()
	out, err := runAdmin(ctx, cfg, opRecList, []string{string(fb)}, stderr)
	if err != nil {
		return nil, err
	}
	var metas []recording.Meta
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var m recording.Meta
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return metas, nil
		} else if err != nil {
			return metas, fmt.Errorf("decode: %w", err)
		}
		metas = append(metas, m)
	}
}

// printReport writes rows as an aligned table.
func printReport(w io.Writer, rows []reportRow) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tRESOURCE\tACTION\tDECISION\tSESSION\tRECORDINGS\tSOURCE\tREPLICA")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), r.Kind, dash(r.Resource),
			dash(r.Action), dash(r.Decision), dash(r.Session), dash(strings.Join(slices.Sorted(slices.Values(r.Recordings)), ",")),
			dash(r.Source), dash(r.Replica))
	}
	tw.Flush()
}
