package store_test

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

	"github.com/gatehouse-dev/gatehouse/store"
)

// crashEnv switches the test binary into the writer child of
// TestKill9LosesNoCommittedWrite; its value is the store path.
const (
	crashEnv      = "GATEHOUSE_STORE_CRASH_CHILD"
	crashRoundEnv = "GATEHOUSE_STORE_CRASH_ROUND"
)

// crashValue is the value the child writes under key number i of a round:
// sizes vary from a few bytes to several pages, so that a kill can land in
// the middle of a multi-page commit.
func crashValue(round, i int) []byte {
	size := 16 + (i*7919)%9000
	return bytes.Repeat([]byte{byte('a' + (round*31+i)%26)}, size)
}

func crashKey(round, i int) string { return fmt.Sprintf("crash/%d/%06d", round, i) }

// TestCrashChild is the writer child. It writes keys one after another and
// acknowledges each on stdout only after Set returned, then bumps a counter
// and acknowledges its new value. It never ends on its own: the parent kills
// it with SIGKILL.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("writer child of TestKill9LosesNoCommittedWrite")
	}
	round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
	s, err := store.OpenBolt(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	ctx := t.Context()
	for i := 0; ; i++ {
		if err := s.Set(ctx, crashKey(round, i), crashValue(round, i), 0); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("set", i) // os.Stdout is unbuffered: one write(2) per line
		n, err := s.Incr(ctx, "crash/counter", 0)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("incr", n)
	}
}

// TestKill9LosesNoCommittedWrite re-executes the test binary as a writer,
// SIGKILLs it at a random point, reopens the store and checks that every
// write the child acknowledged is there, in several rounds on the same file.
func TestKill9LosesNoCommittedWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	acked := map[int]int{} // round -> number of acknowledged keys
	var counter int64      // highest acknowledged counter value
	for round := range 6 {
		killAfter := 5 + rand.IntN(200)
		n, c := runCrashChild(t, path, round, killAfter)
		if n < killAfter {
			t.Fatalf("round %d: child acknowledged %d writes, want at least %d", round, n, killAfter)
		}
		acked[round] = n
		counter = max(counter, c)

		s, err := store.OpenBolt(path)
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		ctx := t.Context()
		for r := 0; r <= round; r++ {
			for i := range acked[r] {
				v, err := s.Get(ctx, crashKey(r, i))
				if err != nil || !bytes.Equal(v, crashValue(r, i)) {
					t.Errorf("round %d: acknowledged key %s: got %d bytes, %v; want its %d-byte value",
						round, crashKey(r, i), len(v), err, len(crashValue(r, i)))
				}
			}
		}
		got, err := s.Get(ctx, "crash/counter")
		n64, _ := strconv.ParseInt(string(got), 10, 64)
		// The counter holds every acknowledged increment, plus at most the
		// one that committed but was not yet acknowledged.
		if err != nil || n64 < counter || n64 > counter+1 {
			t.Errorf("round %d: counter = %q, %v; want %d or %d", round, got, err, counter, counter+1)
		}
		counter = n64
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d acknowledged writes, checked", round, n)
	}
}

// runCrashChild starts the writer, kills it with SIGKILL after killAfter
// acknowledged keys (plus a random sub-millisecond delay, to land inside a
// commit) and returns how many keys and which counter value it
// acknowledged, including lines that were in the pipe when it died.
func runCrashChild(t *testing.T, path string, round, killAfter int) (keys int, counter int64) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path, crashRoundEnv+"="+strconv.Itoa(round))
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
	defer watchdog.Stop()

	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "set "):
			i, err := strconv.Atoi(strings.TrimPrefix(line, "set "))
			if err != nil || i != keys {
				t.Fatalf("child printed %q, want set %d", line, keys)
			}
			keys++
		case strings.HasPrefix(line, "incr "):
			counter, _ = strconv.ParseInt(strings.TrimPrefix(line, "incr "), 10, 64)
		case strings.HasPrefix(line, "error "):
			t.Fatalf("child: %s", line)
		}
		if keys >= killAfter && !killed {
			time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !killed || !errors.As(err, &exit) || exit.ExitCode() != -1 {
		t.Fatalf("child ended with %v (killed by us: %v), stderr:\n%s", err, killed, stderr.String())
	}
	return keys, counter
}
