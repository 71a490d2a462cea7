package portal

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
)

func TestReviewLiveStreamsServerSentEvents(t *testing.T) {
	rv := newRVEnv(t)
	c, _ := rv.reviewer("rita@example.com", "security")
	ch := make(chan []byte)
	rv.rec.mu.Lock()
	rv.rec.live["rec-live"] = ch
	rv.rec.mu.Unlock()

	res, err := c.Get("https://gate.test/review/s/rec-live/live")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("live = %d, Content-Type %q, Cache-Control %q; want 200 text/event-stream no-store",
			res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"))
	}
	br := bufio.NewReader(res.Body)
	// readMessage reads one SSE message (up to its blank line).
	readMessage := func() string {
		t.Helper()
		var sb strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended after %q: %v", sb.String(), err)
			}
			if line == "\n" {
				return sb.String()
			}
			sb.WriteString(line)
		}
	}
	// Each line reaches the reviewer while the session runs, one message
	// per asciicast line, a line split across chunks once it is whole.
	ch <- []byte(`{"version":2,"width":80,"height":24}` + "\n")
	if got, want := readMessage(), `data: {"version":2,"width":80,"height":24}`+"\n"; got != want {
		t.Errorf("first message = %q, want %q", got, want)
	}
	ch <- []byte(`[0.1,"o","top\r\n"]` + "\n" + `[0.2,"o",`)
	if got, want := readMessage(), `data: [0.1,"o","top\r\n"]`+"\n"; got != want {
		t.Errorf("second message = %q, want %q", got, want)
	}
	ch <- []byte(`"b"]` + "\n")
	if got, want := readMessage(), `data: [0.2,"o","b"]`+"\n"; got != want {
		t.Errorf("third message = %q, want %q", got, want)
	}
	// The session ends: the channel closes, the stream says done.
	close(ch)
	if got, want := readMessage(), "event: done\ndata: \n"; got != want {
		t.Errorf("last message = %q, want %q", got, want)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("after done: %v, want the end of the stream", err)
	}
	plays := rv.audit.inner.find("recording.play", audit.Allow)
	if len(plays) != 1 || plays[0].Action != "watch" || plays[0].Actor != "rita@example.com" || plays[0].Resource != "recording:rec-live" {
		t.Errorf("recording.play events = %+v, want one watch by rita on rec-live", plays)
	}
}

func TestReviewLiveOfEndedSessionEndsAtOnce(t *testing.T) {
	rv := newRVEnv(t)
	c, _ := rv.reviewer("rita@example.com", "security")
	// rec-old has ended; rec-live is indexed live but not on this replica
	// (Watch fails).
	for _, id := range []string{"rec-old", "rec-live"} {
		res := rv.get(c, "https://gate.test/review/s/"+id+"/live")
		if res.StatusCode != http.StatusOK || res.body != "event: done\ndata: \n\n" {
			t.Errorf("live of %s = %d %q, want only the done event", id, res.StatusCode, res.body)
		}
	}
	if n := len(rv.audit.inner.find("recording.play", "")); n != 0 {
		t.Errorf("streams that showed nothing audited %d playbacks", n)
	}
}

func TestReviewLiveRefusedWhenAuditFails(t *testing.T) {
	rv := newRVEnv(t)
	c, _ := rv.reviewer("rita@example.com", "security")
	ch := make(chan []byte, 1)
	ch <- []byte(`{"version":2,"width":80,"height":24}` + "\n")
	rv.rec.mu.Lock()
	rv.rec.live["rec-live"] = ch
	rv.rec.mu.Unlock()
	rv.audit.mu.Lock()
	rv.audit.fail["recording.play"] = true
	rv.audit.mu.Unlock()
	res := rv.get(c, "https://gate.test/review/s/rec-live/live")
	if res.StatusCode != http.StatusServiceUnavailable || strings.Contains(res.body, "data:") {
		t.Errorf("live with a failing audit log = %d %.200q, want 503 and no stream", res.StatusCode, res.body)
	}
}

func TestReviewTerminateFailureIsAudited(t *testing.T) {
	rv := newRVEnv(t)
	c, res := rv.reviewer("rita@example.com", "security")
	rv.term.err = errors.New("kill signal not delivered")
	res = rv.terminate(c, "rec-live", csrfOf(t, res.body), "/review/", "https://gate.test")
	if res.StatusCode != http.StatusServiceUnavailable || strings.Contains(res.body, "kill signal") {
		t.Errorf("failed terminate = %d, want 503 without the internal error", res.StatusCode)
	}
	ev := rv.audit.inner.find("recording.terminate", audit.Deny)
	if len(ev) != 1 || ev[0].Actor != "rita@example.com" || ev[0].Session != "conn-live" {
		t.Errorf("recording.terminate denials = %+v, want one by rita for conn-live", ev)
	}
}

func TestSSEFramer(t *testing.T) {
	var f sseFramer
	if got := string(f.frame([]byte("\n\r\n  \n"))); got != "" {
		t.Errorf("blank lines framed as %q", got)
	}
	if got := string(f.frame([]byte("[1,\"o\",\"a\"]\r\n[2,"))); got != "data: [1,\"o\",\"a\"]\n\n" {
		t.Errorf("frame = %q", got)
	}
	// A raw carriage return would end the SSE line early: it never passes.
	if got := string(f.frame([]byte("\"o\",\"x\ry\"]\n"))); got != "data: [2,\"o\",\"xy\"]\n\n" {
		t.Errorf("frame with a raw CR = %q", got)
	}
	// An endless line goes out once it passes the bound instead of
	// growing the buffer.
	long := strings.Repeat("x", maxPendingLine+1)
	if got := f.frame([]byte(long)); len(got) != len("data: ")+len(long)+2 || len(f.pending) != 0 {
		t.Errorf("over-long line: framed %d bytes, %d pending", len(got), len(f.pending))
	}
	f.frame([]byte("[3,\"o\",\"tail\"]"))
	if got := string(f.flush()); got != "data: [3,\"o\",\"tail\"]\n\n" {
		t.Errorf("flush = %q", got)
	}
	if got := f.flush(); len(got) != 0 {
		t.Errorf("second flush = %q, want nothing", got)
	}
}
