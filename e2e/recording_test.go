package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// recListed is one line of `gatehouse recordings list --json`.
type recListed struct {
	ID, User, Target, Login, Kind, Command, Status, Session string
	Start, End                                              time.Time
}

// TestRecording is issue 7's acceptance test: real OpenSSH through the
// real binary to a real sshd with the default record: required; the
// recording exists while the session runs; export gives a file Debian's
// asciinema accepts; SFTP uploads are recorded with path, size and
// SHA-256; verify catches a flipped byte and a truncation; the reviewer
// console in Chromium finds a session by a word of its output, plays it,
// refuses a non-reviewer and terminates a live session within a second;
// kill -9 leaves a readable recording marked incomplete.
func TestRecording(t *testing.T) {
	for _, tool := range []string{"ssh", "sftp", "ssh-keygen", "asciinema", "script"} {
		harness.RequireTool(t, tool)
	}
	ca := harness.NewCA(t)
	port := strconv.Itoa(harness.FreePort(t))
	portal := "https://gate.test:" + port
	dex := harness.StartDex(t, harness.DexOptions{
		CA: ca,
		Users: []harness.DexUser{
			{Email: sshEmail, Password: sshPassword, Groups: []string{"sre", "security"}},
			{Email: "bob@example.com", Password: "pw-bob", Groups: []string{"sre"}},
		},
		Clients: []harness.DexClient{{ID: "gatehouse", Secret: "gatehouse-secret-for-tests",
			RedirectURIs: []string{portal + "/auth/callback"}}},
	})
	target := harness.StartSSHD(t, harness.SSHDOptions{TrustedUserCAKeys: randomKeyLine(t)})
	cert, key := ca.Issue(t, "gate.test")
	g := harness.StartGatehouseYAML(t, fmt.Sprintf(`public_url: %s
listen:
  https: "127.0.0.1:%s"
  ssh: "127.0.0.1:0"
tls: {mode: files, cert_file: %s, key_file: %s}
data_dir: /placeholder
sso:
  issuer: %s
  client_id: gatehouse
  client_secret_file: %s
  ca_roots: [%s]
targets:
  - name: web
    address: %q
    host_key: %q
    logins: [%s]
    allow: {groups: [sre]}
reviewers: {groups: [security]}
`, portal, port, cert, key, dex.Issuer, dex.SecretFile(t, "gatehouse"), dex.CAFile, target.Addr, target.HostKeyLine, target.User))
	e := newSSHEnvFor(t, g, target)
	browser := harness.NewBrowser(t, harness.BrowserOptions{CA: ca})
	e.tab = browser.NewTab(t)
	p := []string{"-p", e.sshPort}
	dest := e.dest(e.login, "web")
	batch := append(p, "-o", "BatchMode=yes", dest)
	word := "findme" + randomName()
	liveWord := "watchme" + randomName()

	step(t, "first contact is approved in the browser", func() {
		if r, code := e.run(t, true, "", "ssh", append(p, dest, "true")...); code != 0 {
			t.Fatalf("exit %d, stderr %q", code, r.stderr.String())
		}
	})

	var live recListed
	liveRun := e.start(t, "", "ssh", append(batch, "echo "+liveWord+"; exec sleep 300")...)
	step(t, "the recording exists while the session is still open", func() {
		waitOutput(t, liveRun, liveWord+"\n")
		live = findRecording(t, g, func(r recListed) bool { return r.Status == "live" && r.User == sshEmail && r.Target == "web" })
		if !live.End.IsZero() {
			t.Errorf("live recording has an end: %+v", live)
		}
	})

	step(t, "the console terminates the live session within a second", func() {
		e.tab.Navigate(portal + "/review/s/" + live.ID)
		e.tab.SignIn(sshEmail, sshPassword, portal+"/review/s/"+live.ID)
		// The clock starts when the button is there to be clicked: the
		// page's own load is not part of "within a second".
		e.tab.Do(chromedp.WaitVisible(chromedp.CSS("#terminate")))
		start := time.Now()
		e.tab.Click("#terminate")
		select {
		case <-liveRun.done:
			if d := time.Since(start); d > time.Second {
				t.Errorf("session ended %v after the click, want within 1s", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("session still open 5s after Terminate; stderr %q", liveRun.stderr.String())
		}
		if !strings.Contains(liveRun.stderr.String(), "terminated by "+sshEmail) {
			t.Errorf("client stderr %q does not say who terminated it", liveRun.stderr.String())
		}
		waitAudit(t, g, `"type":"ssh.end".*terminated by `+sshEmail)
	})

	step(t, "commands and an SFTP upload are recorded", func() {
		if r, code := e.run(t, false, "", "ssh", append(batch, "echo "+word+"; echo second line")...); code != 0 {
			t.Fatalf("exec: exit %d, stderr %q", code, r.stderr.String())
		}
		local := randomFile(t, 200<<10)
		remote := "/tmp/gh-e2e-rec-" + randomName()
		t.Cleanup(func() { os.Remove(remote) })
		b := filepath.Join(t.TempDir(), "batch")
		writeTestFile(t, b, "put "+local+" "+remote+"\n")
		if r, code := e.run(t, false, "", "sftp", "-P", e.sshPort, "-b", b, dest); code != 0 {
			t.Fatalf("sftp: exit %d, stderr %q", code, r.stderr.String())
		}
		data, err := os.ReadFile(local)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)

		rec := findRecording(t, g, func(r recListed) bool { return r.Kind == "exec" && strings.Contains(r.Command, word) })
		cast := exportCast(t, g, rec.ID)
		out := asciinemaCat(t, cast)
		if !strings.Contains(out, word) || !strings.Contains(out, "second line") {
			t.Errorf("asciinema cat of the export lacks the output:\n%s", out)
		}
		sftpRec := findRecording(t, g, func(r recListed) bool { return r.Kind == "sftp" && r.Status == "complete" })
		sftpWants := []string{remote, hex.EncodeToString(sum[:]), strconv.Itoa(len(data))}

		if r := g.Run(t, "recordings", "verify", rec.ID); r.ExitCode != 0 {
			t.Fatalf("verify of an untouched recording: exit %d\n%s%s", r.ExitCode, r.Stdout, r.Stderr)
		}
		file := filepath.Join(g.DataDir, "recordings", rec.ID+".ghrec")
		orig := readFileBytes(t, file)
		flipped := append([]byte(nil), orig...)
		flipped[len(flipped)/2] ^= 0x01
		for name, content := range map[string][]byte{"one flipped bit": flipped, "truncated": orig[:len(orig)-40]} {
			if err := os.WriteFile(file, content, 0o600); err != nil {
				t.Fatal(err)
			}
			if r := g.Run(t, "recordings", "verify", rec.ID); r.ExitCode == 0 {
				t.Errorf("verify passed a %s recording:\n%s", name, r.Stdout)
			} else {
				t.Logf("verify of a %s recording: %s%s", name, r.Stdout, r.Stderr)
			}
		}
		if err := os.WriteFile(file, orig, 0o600); err != nil {
			t.Fatal(err)
		}

		step(t, "a reviewer finds it by a word of its output and plays it", func() {
			e.tab.Navigate(portal + "/review/?q=" + word)
			e.tab.WaitText("Search commands and output")
			ids := evalStrings(t, e.tab, `[...document.querySelectorAll("tr[data-id]")].map(r => r.dataset.id)`)
			if len(ids) != 1 || ids[0] != rec.ID {
				t.Fatalf("search for %q lists %v, want only %s", word, ids, rec.ID)
			}
			e.tab.Navigate(portal + "/review/s/" + rec.ID)
			e.tab.Click("#player")
			e.tab.WaitText(word)
			if shot := e.tab.Screenshot("player"); shot != "" {
				t.Logf("player screenshot: %s", shot)
			}
			waitAudit(t, g, `"type":"recording.play".*`+sshEmail+`.*recording:`+rec.ID)
			// The SFTP upload's event, beside its recording's player.
			e.tab.Navigate(portal + "/review/s/" + sftpRec.ID)
			e.tab.WaitText("Events")
			text := e.tab.Text()
			for _, want := range sftpWants {
				if !strings.Contains(text, want) {
					t.Errorf("the SFTP recording's events lack %q:\n%s", want, text)
				}
			}
		})
	})

	step(t, "a person outside the reviewer group is refused", func() {
		tab := browser.NewContext(t)
		tab.Navigate(portal + "/review/")
		tab.SignIn("bob@example.com", "pw-bob", portal+"/review/")
		tab.WaitText("Access denied")
		if strings.Contains(tab.Text(), word) {
			t.Errorf("the denied page shows recordings")
		}
	})

	step(t, "kill -9 mid-session leaves a readable recording marked incomplete", func() {
		crash := e.start(t, "", "ssh", append(batch, "echo before-crash-"+word+"; exec sleep 300")...)
		waitOutput(t, crash, "before-crash-"+word+"\n")
		// Kill only once the output is on disk (a flush at most a second
		// later): what a crash may lose is what was never flushed.
		live := findRecording(t, g, func(r recListed) bool { return strings.Contains(r.Command, "before-crash-"+word) })
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if strings.Contains(string(readFileBytes(t, exportCast(t, g, live.ID))), `"o", "before-crash-`+word) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the live recording's output never reached the disk")
			}
		}
		g.Kill9AndRestart(t)
		rec := findRecording(t, g, func(r recListed) bool { return strings.Contains(r.Command, "before-crash-"+word) })
		if rec.Status != "incomplete" {
			t.Errorf("after kill -9 the recording is %q, want incomplete", rec.Status)
		}
		// The output event, not the command in the header.
		if out := string(readFileBytes(t, exportCast(t, g, rec.ID))); !strings.Contains(out, `"o", "before-crash-`+word) {
			t.Errorf("the crashed recording lost its output:\n%s", out)
		}
		// Nothing else was lost: the key binding and earlier recordings.
		if r, code := e.run(t, false, "", "ssh", append(batch, "echo after")...); code != 0 || r.stdout.String() != "after\n" {
			t.Errorf("after restart: exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
		}
		if len(listRecordings(t, g)) < 5 {
			t.Errorf("recordings after restart: %v", listRecordings(t, g))
		}
	})
}

func listRecordings(t *testing.T, g *harness.Gatehouse) []recListed {
	t.Helper()
	var out []recListed
	for _, l := range strings.Split(strings.TrimSpace(g.MustRun(t, "recordings", "list", "--json")), "\n") {
		if l == "" {
			continue
		}
		var r recListed
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("recordings list --json line %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

// findRecording waits until a listed recording matches.
func findRecording(t *testing.T, g *harness.Gatehouse, match func(recListed) bool) recListed {
	t.Helper()
	var all []recListed
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		all = listRecordings(t, g)
		for _, r := range all {
			if match(r) {
				return r
			}
		}
	}
	t.Fatalf("no matching recording in %+v", all)
	return recListed{}
}

func exportCast(t *testing.T, g *harness.Gatehouse, id string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), id+".cast")
	g.MustRun(t, "recordings", "export", "-o", out, id)
	return out
}

// asciinemaCat runs Debian's asciinema on file; it opens /dev/tty, so it
// runs under script(1).
func asciinemaCat(t *testing.T, file string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "script", "-qec", "asciinema cat "+file, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("asciinema cat %s: %v\n%s", file, err, out)
	}
	return string(out)
}

func readFileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func evalStrings(t *testing.T, tab *harness.Tab, js string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, 10*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return out
}
