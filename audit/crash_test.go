package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// crashEnv switches the test binary into the writer child of
// TestKill9LosesNoLoggedEvent; its value is the log path.
const crashEnv = "GATEHOUSE_AUDIT_CRASH_CHILD"

// TestCrashChild logs events forever, acknowledging each on stdout after
// Log returned; the parent kills it with SIGKILL.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("writer child of TestKill9LosesNoLoggedEvent")
	}
	l, err := New(path, Options{Replica: "child"})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		ev := Event{Type: "http.access", Action: "child " + os.Getenv(crashEnv+"_ROUND") + " " + strconv.Itoa(i), Decision: Deny}
		if err := l.Log(t.Context(), ev); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("ack", i)
	}
}

// TestKill9LosesNoLoggedEvent kills a writer at random points and checks,
// after each kill, that the log reopens, verifies, and holds every event the
// writer acknowledged.
func TestKill9LosesNoLoggedEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var want []string // acknowledged actions, in order
	for round := range 3 {
		killAfter := 5 + rand.IntN(80)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path, crashEnv+"_ROUND="+strconv.Itoa(round))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		watchdog := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		acked, killed := 0, false
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "error ") {
				t.Fatalf("child: %s", line)
			}
			if !strings.HasPrefix(line, "ack ") {
				continue
			}
			want = append(want, fmt.Sprintf("child %d %d", round, acked))
			acked++
			if acked >= killAfter && !killed {
				time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
				cmd.Process.Kill()
				killed = true
			}
		}
		err = cmd.Wait()
		watchdog.Stop()
		var exit *exec.ExitError
		if !killed || !errors.As(err, &exit) || exit.ExitCode() != -1 {
			t.Fatalf("round %d: child ended with %v (killed: %v), stderr:\n%s", round, err, killed, stderr.String())
		}

		// The log reopens (repairing a torn line if the kill left one),
		// verifies, and holds every acknowledged event in order.
		l, err := New(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		l.Close()
		n, err := VerifyFile(path)
		if err != nil {
			t.Fatalf("round %d: VerifyFile = %d, %v", round, n, err)
		}
		evs, _ := readEvents(t, path)
		var got []string
		for _, ev := range evs {
			if ev.Type != RepairType {
				got = append(got, ev.Action)
			}
		}
		// want must be a subsequence of got: present and in order.
		j := 0
		for _, g := range got {
			if j < len(want) && g == want[j] {
				j++
			}
		}
		if j < len(want) {
			t.Fatalf("round %d: acknowledged event %q missing from the log or out of order", round, want[j])
		}
		want = got // unacknowledged but written events are kept too
		t.Logf("round %d: killed after %d acknowledged events; log verifies with %d lines", round, acked, n)
	}
}
