package recording

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testlog"
	"github.com/gatehouse-dev/gatehouse/store"
)

// crashEnv switches the test binary into the writer child of
// TestKill9Recording; its value is the data directory.
const crashEnv = "GATEHOUSE_RECORDING_CRASH_CHILD"

func crashConfig(t testing.TB, dir string, st store.Store) Config {
	return Config{Dir: filepath.Join(dir, "recordings"), Keys: testVault(t, dir), Store: st, Audit: &fakeAudit{},
		Logger: testlog.New(t), Replica: "r1", FlushInterval: time.Hour}
}

// TestRecordingCrashChild writes a store key unrelated to recording, then a
// recording: output lines, a flush (the code the timer runs) every ten
// lines, acknowledged on stdout only after the flush returned. It never
// ends on its own: the parent kills it with SIGKILL.
func TestRecordingCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("writer child of TestKill9Recording")
	}
	fail := func(err error) { fmt.Println("error", err); os.Exit(2) }
	st, err := store.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	if err := st.Set(ctx, "other/key", []byte("kept"), 0); err != nil {
		fail(err)
	}
	r, err := New(crashConfig(t, dir, st))
	if err != nil {
		fail(err)
	}
	w, err := r.Start(ctx, testMeta())
	if err != nil {
		fail(err)
	}
	fmt.Println("id", w.ID())
	for i := 0; ; i++ {
		if err := w.Output(fmt.Appendf(nil, "tick %06d %s\r\n", i, strings.Repeat("x", i%200))); err != nil {
			fail(err)
		}
		if i%10 == 9 {
			if err := w.flush(i%20 == 9); err != nil {
				fail(err)
			}
			fmt.Println("flushed", i)
		}
	}
}

// TestKill9Recording kills a writing process with SIGKILL and checks what
// a restart finds: the recording marked incomplete by Recover, readable
// up to the last acknowledged flush, its chain intact; the rest of the
// store untouched.
func TestKill9Recording(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for round := range 3 {
		dir := t.TempDir()
		id, flushed := runRecordingChild(t, dir, 40+round*37)
		st, err := store.OpenBolt(filepath.Join(dir, "state.db"))
		if err != nil {
			t.Fatalf("reopen store after kill -9: %v", err)
		}
		ctx := t.Context()
		if v, err := st.Get(ctx, "other/key"); err != nil || string(v) != "kept" {
			t.Errorf("unrelated key after kill -9 = %q, %v", v, err)
		}
		r, err := New(crashConfig(t, dir, st))
		must(t, err)
		if n, err := r.Recover(ctx); err != nil || n != 1 {
			t.Errorf("Recover = %d, %v; want 1", n, err)
		}
		m, err := r.Get(ctx, id)
		if err != nil || m.Status != StatusIncomplete || m.End.IsZero() {
			t.Errorf("meta after Recover = %+v, %v", m, err)
		}
		var cast bytes.Buffer
		if err := r.Cast(ctx, id, &cast); err != nil {
			t.Fatalf("Cast of the crashed recording: %v", err)
		}
		for i := 0; i <= flushed; i++ {
			if !strings.Contains(cast.String(), fmt.Sprintf("tick %06d ", i)) {
				t.Fatalf("round %d: line %d (flushed before the kill, last flush at %d) missing", round, i, flushed)
			}
		}
		rep, err := r.Verify(ctx, id)
		must(t, err)
		if rep.OK || rep.Complete || len(rep.Problems) != 1 {
			t.Errorf("report = %+v, want one problem: incomplete", rep)
		} else if p := rep.Problems[0]; !strings.Contains(p, "incomplete") {
			t.Errorf("problem %q, want incomplete", p)
		}
		t.Logf("round %d: killed after flush of line %d; verify: %q", round, flushed, rep.Problems)
		st.Close()
	}
}

// runRecordingChild starts the child and kills it after its flush of line
// killAt; it returns the recording ID and the last acknowledged flush.
func runRecordingChild(t *testing.T, dir string, killAt int) (id string, flushed int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRecordingCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	watchdog := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer watchdog.Stop()
	flushed = -1
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id "):
			id = strings.TrimPrefix(line, "id ")
		case strings.HasPrefix(line, "flushed "):
			flushed, _ = strconv.Atoi(strings.TrimPrefix(line, "flushed "))
		case strings.HasPrefix(line, "error "):
			t.Fatalf("child: %s", line)
		}
		if flushed >= killAt && !killed {
			must(t, cmd.Process.Kill()) // SIGKILL, while the child keeps writing
			killed = true
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !killed || !errors.As(err, &exit) || exit.ExitCode() != -1 {
		t.Fatalf("child ended with %v (killed: %v), stderr:\n%s", err, killed, stderr.String())
	}
	return id, flushed
}
