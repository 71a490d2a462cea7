package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/store"
)

// reportFixture is a deployment whose audit log holds a day of ann's and
// bob's accesses, with one of ann's SSH sessions recorded, and a second
// replica's audit log.
type reportFixture struct {
	path, other string
	cfg         *config.Config
	recID       string // ann's recording of connection conn-1
	lateID      string // ann's recording of conn-9, which no given log names
}

func newReportFixture(t *testing.T) *reportFixture {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "data")
	must(os.Mkdir(dir, 0o700))
	f := &reportFixture{path: writeConfig(t, targetYAML(t, dir)+`routes:
  - {name: grafana, host: grafana.test, upstream: "http://127.0.0.1:1", allow: {groups: [eng]}}
`)}
	cfg, err := config.LoadFile(f.path)
	must(err)
	f.cfg = cfg
	st, err := store.OpenBolt(filepath.Join(dir, "state.db"))
	must(err)
	defer st.Close()
	al, err := openAudit(cfg, nil, nil)
	must(err)
	now := time.Now().UTC()
	old, recent := now.Add(-100*time.Hour), now.Add(-2*time.Hour)
	for _, ev := range []audit.Event{
		{Time: old, Type: "ssh.auth", Actor: "ann@example.com", Resource: "target:ancient", Action: "login ubuntu", Decision: audit.Allow, Session: "conn-0"},
		{Time: recent, Type: "sso.login", Actor: "ann@example.com", Decision: audit.Allow, Source: "192.0.2.1:5000"},
		{Time: recent.Add(time.Second), Type: "webauthn.assert", Actor: "ann@example.com", Decision: audit.Allow},
		{Time: recent.Add(2 * time.Second), Type: "session.handoff", Actor: "ann@example.com", Resource: "host:grafana.test", Decision: audit.Allow, Session: "h1"},
		{Time: recent.Add(3 * time.Second), Type: "approval", Actor: "ann@example.com", Resource: "target:prod", Action: "login ubuntu", Decision: audit.Allow, Session: "conn-1"},
		{Time: recent.Add(4 * time.Second), Type: "ssh.auth", Actor: "Ann@Example.com", Resource: "target:prod", Action: "login ubuntu", Decision: audit.Allow, Session: "conn-1", Source: "192.0.2.1:6000"},
		{Time: recent.Add(5 * time.Second), Type: "ssh.auth", Actor: "bob@example.com", Resource: "target:prod", Action: "login root", Decision: audit.Allow, Session: "conn-2"},
		{Time: recent.Add(6 * time.Second), Type: "lock", Actor: "sec@example.com", Resource: "user:ann@example.com", Action: "lock", Decision: audit.Allow, Reason: "INC-7"},
	} {
		must(al.Log(context.Background(), ev))
	}
	defer al.Close()

	rec, err := recording.New(recorderConfig(cfg, st, testKeyring(t, cfg), al, nil, "test"))
	must(err)
	record := func(session string) string {
		w, err := rec.Start(context.Background(), recording.Meta{User: "ann@example.com", Target: "prod", Login: "ubuntu", SessionID: session, Kind: recording.KindShell})
		must(err)
		must(w.Close("normal"))
		return w.ID()
	}
	f.recID, f.lateID = record("conn-1"), record("conn-9")

	// Another replica's log: ann reached a target there too.
	f.other = filepath.Join(t.TempDir(), "b", "audit.log")
	must(os.MkdirAll(filepath.Dir(f.other), 0o700))
	bl, err := audit.New(f.other, audit.Options{Replica: "b"})
	must(err)
	must(bl.Log(context.Background(), audit.Event{Time: recent.Add(time.Minute), Type: "ssh.auth", Actor: "ann@example.com",
		Resource: "target:web", Action: "login deploy", Decision: audit.Allow, Session: "conn-b"}))
	must(bl.Close())
	return f
}

func reportRows(t *testing.T, out string) []reportRow {
	t.Helper()
	var rows []reportRow
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r reportRow
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		rows = append(rows, r)
	}
	return rows
}

func TestReportJSON(t *testing.T) {
	f := newReportFixture(t)
	out, errOut := runCLI(t, 0, "report", "--config", f.path, "--user", "ann@example.com", "--since", "72h", "--json", "--audit-log", f.other)
	if !strings.Contains(errOut, "chain intact") {
		t.Errorf("stderr does not report the chain check: %q", errOut)
	}
	rows := reportRows(t, out)
	var got []string
	for _, r := range rows {
		got = append(got, r.Kind+" "+r.Resource+" "+strings.Join(r.Recordings, ","))
	}
	want := []string{
		"sign-in  ",
		"sign-in  ",
		"route route:grafana ",
		"approval target:prod ",
		"ssh target:prod " + f.recID,
		"lock user:ann@example.com ",
		"ssh target:web ",
	}
	// ann's recording of a connection no log names comes last (it started
	// now, after every event).
	want = append(want, "recording target:prod "+f.lateID)
	if !slices.Equal(got, want) {
		t.Errorf("report rows:\n got %q\nwant %q", got, want)
	}
	for _, r := range rows {
		if r.Resource == "target:ancient" || strings.Contains(r.Action, "root") {
			t.Errorf("row outside the query: %+v", r)
		}
	}
}

func TestReportTable(t *testing.T) {
	f := newReportFixture(t)
	out, _ := runCLI(t, 0, "report", "--config", f.path, "--user", "ann@example.com", "--since", time.Now().Add(-72*time.Hour).Format(time.RFC3339))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 8 || !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("table has %d lines, want a header and 7 rows:\n%s", len(lines), out)
	}
	// Aligned: every row's RESOURCE column starts where the header's does.
	col := strings.Index(lines[0], "RESOURCE")
	for _, l := range lines[1:] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("row not aligned with RESOURCE at %d: %q", col, l)
		}
	}
	if !strings.Contains(out, f.recID) {
		t.Errorf("table lacks the recording ID %s", f.recID)
	}
}

func TestReportBrokenChain(t *testing.T) {
	f := newReportFixture(t)
	b, err := os.ReadFile(auditPath(f.cfg))
	if err != nil {
		t.Fatal(err)
	}
	// Someone rewrote who was locked.
	if err := os.WriteFile(auditPath(f.cfg), []byte(strings.Replace(string(b), "INC-7", "INC-8", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut := runCLI(t, 1, "report", "--config", f.path, "--user", "ann@example.com", "--since", "72h", "--json")
	if !strings.Contains(errOut, "CHAIN BROKEN") {
		t.Errorf("stderr does not say the chain is broken: %q", errOut)
	}
	if len(reportRows(t, out)) == 0 {
		t.Error("no rows: the events read are still reported")
	}
}

func TestReportUsage(t *testing.T) {
	f := newReportFixture(t)
	for _, args := range [][]string{
		{"report", "--config", f.path, "--since", "1h"},
		{"report", "--config", f.path, "--user", "ann@example.com"},
		{"report", "--config", f.path, "--user", "ann@example.com", "--since", "yesterday"},
		{"report", "--user", "ann@example.com", "--since", "1h"},
	} {
		runCLI(t, 2, args...)
	}
}
