package sshgw

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/store"
)

// *recording.Writer is what the gateway writes to in production.
var _ SessionRecording = (*recording.Writer)(nil)

// withRealRecorder gives the gateway a real recording.Recorder on the
// env's store, returned through rec.
func withRealRecorder(t testing.TB, rec **recording.Recorder) func(*Config) {
	return func(c *Config) {
		r, err := recording.New(recording.Config{Dir: filepath.Join(c.Cfg.DataDir, "recordings"), Keys: fileVault(t, c.Cfg.DataDir, c.Secrets),
			Store: c.Store.(*store.Bolt), Audit: c.Audit, Replica: "r1"})
		if err != nil {
			t.Fatal(err)
		}
		*rec = r
		c.Recorder = Recording(r.Start)
	}
}

// TestRealRecorder runs an exec through the gateway into the real
// recorder and reads back the asciicast, the events and the seal.
func TestRealRecorder(t *testing.T) {
	var rec *recording.Recorder
	e := newEnv(t, Limits{}, nil, withRealRecorder(t, &rec))
	cl := e.dialBound(t, "ubuntu@prod")
	if out, _, _ := run(t, cl, "echo output-only-in-this-session", ""); out != "output-only-in-this-session\n" {
		t.Fatalf("echo = %q", out)
	}
	ctx := context.Background()
	var m recording.Meta
	deadline := time.Now().Add(5 * time.Second)
	for {
		list, err := rec.List(ctx, recording.Filter{User: alice.Email})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 1 && list[0].Status == recording.StatusComplete {
			m = list[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recordings = %+v", list)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m.Kind != recording.KindExec || m.Command != "echo output-only-in-this-session" || m.SessionID != e.sessionIDOf(t) {
		t.Errorf("meta = %+v", m)
	}
	var cast bytes.Buffer
	if err := rec.Cast(ctx, m.ID, &cast); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cast.String(), "output-only-in-this-session") {
		t.Errorf("cast lacks the output:\n%s", cast.String())
	}
	evs, err := rec.Events(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	if got := strings.Join(types, ","); got != "approval,exec,exit,end" {
		t.Errorf("events = %s", got)
	}
	rep, err := rec.Verify(ctx, m.ID)
	if err != nil || !rep.OK || !rep.Complete {
		t.Errorf("verify = %+v, %v", rep, err)
	}
}

// BenchmarkRecordedRelay compares exec output throughput through the
// gateway with recording off, on with a recorder that discards (what the
// gateway's own tee costs), and on with the real recorder (asciicast lines,
// age encryption, hash chain, index) in one run, and reports the process's
// CPU time per GiB relayed. The process also runs the client and the fake
// target, so the differences are what recording costs.
//
//	go test ./sshgw -run '^$' -bench RecordedRelay -benchtime 20x
func BenchmarkRecordedRelay(b *testing.B) {
	const size = 64 << 20
	var rec *recording.Recorder
	e := newEnv(b, Limits{}, func(c *config.Config) {
		off, null := c.Targets[0], c.Targets[0]
		off.Name, off.Record = "prodoff", config.RecordOff
		null.Name = "prodnull"
		c.Targets = append(c.Targets, off, null)
	}, withRealRecorder(b, &rec), func(c *Config) {
		real := c.Recorder
		c.Recorder = RecorderFunc(func(ctx context.Context, m recording.Meta) (SessionRecording, error) {
			if m.Target == "prodnull" {
				return discardRecording{}, nil
			}
			return real.Start(ctx, m)
		})
	})
	b.Cleanup(func() { _ = e.srv.Shutdown(context.Background()) })
	for _, tc := range []struct{ name, user string }{{"off", "ubuntu@prodoff"}, {"discard", "ubuntu@prodnull"}, {"on", "ubuntu@prod"}} {
		b.Run(tc.name, func(b *testing.B) {
			key := newSigner(b)
			e.bind(key, alice)
			cl, err := e.dial(&client{user: tc.user, key: key, noKbd: true})
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			b.SetBytes(size)
			cpu0 := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				s, err := cl.NewSession()
				if err != nil {
					b.Fatal(err)
				}
				out, _ := s.StdoutPipe()
				if err := s.Start(fmt.Sprintf("text %d", size)); err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, out)
				if err != nil || n != size {
					b.Fatalf("read %d bytes, %v", n, err)
				}
				_ = s.Wait()
				s.Close()
			}
			b.StopTimer()
			gib := float64(b.N) * size / (1 << 30)
			b.ReportMetric((cpuTime()-cpu0).Seconds()/gib, "cpu-s/GiB")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// discardRecording records nothing, at no cost.
type discardRecording struct{}

func (discardRecording) ID() string                  { return "discard" }
func (discardRecording) Output([]byte) error         { return nil }
func (discardRecording) Resize(int, int) error       { return nil }
func (discardRecording) Event(recording.Event) error { return nil }
func (discardRecording) Close(string) error          { return nil }
func (discardRecording) Err() error                  { return nil }
