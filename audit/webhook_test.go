package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

var hookSecret = []byte("s3cret-hook-key-for-tests")

// receiver is a webhook endpoint that checks signatures and records the seqs
// it accepted, in arrival order. It is also the deliverer's http.RoundTripper:
// requests reach it in memory, so the tests run in a synctest bubble, where
// the backoff and close timers use fake time and synctest.Wait tells when
// the deliverer is idle (a goroutine blocked on a socket would never count as
// idle).
type receiver struct {
	t    *testing.T
	down atomic.Bool // answer 503 to everything

	mu       sync.Mutex // guards the fields below
	seqs     []uint64
	badSig   int
	requests int
}

func newReceiver(t *testing.T) *receiver { return &receiver{t: t} }

// RoundTrip serves req in memory.
func (r *receiver) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	r.serve(rec, req)
	req.Body.Close()
	return rec.Result(), nil
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if err != nil || r.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	mac := hmac.New(sha256.New, hookSecret)
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(req.Header.Get(SignatureHeader)), []byte(want)) {
		r.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	ts, err := strconv.ParseInt(req.Header.Get(TimestampHeader), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		r.t.Errorf("timestamp header %q is not the current Unix time", req.Header.Get(TimestampHeader))
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		r.t.Errorf("Content-Type = %q", ct)
	}
	for line := range bytes.Lines(body) {
		var ev Event
		if !bytes.HasSuffix(line, []byte("\n")) || json.Unmarshal(line, &ev) != nil {
			r.t.Errorf("body line %q is not a newline-terminated event", line)
			continue
		}
		r.seqs = append(r.seqs, ev.Seq)
	}
}

func (r *receiver) got() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seqs)
}

// settled waits until every goroutine in the bubble is idle (the deliverer
// waits for new lines or for a backoff timer) and checks that the receiver
// has accepted n events by then.
func (r *receiver) settled(n int) {
	r.t.Helper()
	synctest.Wait()
	if got := len(r.got()); got != n {
		r.t.Fatalf("receiver accepted %d events once the deliverer was idle, want %d", got, n)
	}
}

func (r *receiver) attempts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// wantSeqs checks that the receiver got seqs first..last, each once, in order.
func (r *receiver) wantSeqs(first, last uint64) {
	r.t.Helper()
	var want []uint64
	for s := first; s <= last; s++ {
		want = append(want, s)
	}
	if got := r.got(); !slices.Equal(got, want) {
		r.t.Errorf("receiver got seqs %v, want %d..%d exactly once in order", got, first, last)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.badSig != 0 {
		r.t.Errorf("receiver saw %d requests with a bad signature", r.badSig)
	}
}

func hookOpts(r *receiver, spool string) *WebhookOptions {
	return &WebhookOptions{
		URL: "https://siem.test/hook", Secret: hookSecret, SpoolDir: spool,
		Client:  &http.Client{Transport: r},
		Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxAttempts: 3,
		CloseTimeout: 2 * time.Second, MaxBatch: 7,
	}
}

func logN(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := range n {
		mustLog(t, l, Event{Type: "http.access", Action: fmt.Sprint(i), Decision: Allow})
	}
}

func TestWebhookDeliversSignedEventsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReceiver(t)
		dir := t.TempDir()
		l := openLog(t, filepath.Join(dir, "audit.log"), Options{Webhook: hookOpts(r, "")})
		logN(t, l, 20)
		r.settled(20)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		r.wantSeqs(1, 20)
		// The default spool dir is the log's; the cursor says all is delivered.
		data, err := os.ReadFile(filepath.Join(dir, "audit.log.webhook-cursor"))
		if err != nil || !strings.Contains(string(data), `"seq":20`) {
			t.Errorf("cursor = %s, %v; want seq 20", data, err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "audit.log.webhook-cursor")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("cursor mode = %v, %v; want 0600", fi.Mode().Perm(), err)
		}
	})
}

func TestWebhookReceiverDownThenUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReceiver(t)
		r.down.Store(true)
		opts := hookOpts(r, t.TempDir())
		l := openLog(t, filepath.Join(t.TempDir(), "audit.log"), Options{Webhook: opts})
		logN(t, l, 30)
		// Fake time: the backoff (5, 10, 20, 20... ms) allows several retries.
		time.Sleep(100 * time.Millisecond)
		r.settled(0)
		if n := r.attempts(); n < opts.MaxAttempts {
			t.Errorf("deliverer made %d attempts in 100ms while the receiver was down, want at least %d", n, opts.MaxAttempts)
		}
		r.down.Store(false)
		// The next retry is at most MaxBackoff away and delivers the backlog.
		time.Sleep(opts.MaxBackoff)
		r.settled(30)
		logN(t, l, 5)
		r.settled(35)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		r.wantSeqs(1, 35)
	})
}

func TestWebhookSpoolSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReceiver(t)
		path := filepath.Join(t.TempDir(), "audit.log")
		spool := t.TempDir()
		opts := hookOpts(r, spool)
		opts.CloseTimeout = 50 * time.Millisecond

		// Phase 1: receiver up, 5 events delivered.
		l := openLog(t, path, Options{Webhook: opts})
		logN(t, l, 5)
		r.settled(5)
		l.Close()

		// Phase 2: receiver down; 10 events wait in the log past Close.
		r.down.Store(true)
		l = openLog(t, path, Options{Webhook: opts})
		logN(t, l, 10)
		start := time.Now()
		l.Close()
		if took := time.Since(start); took != opts.CloseTimeout {
			t.Errorf("Close with the receiver down took %v, want CloseTimeout (%v)", took, opts.CloseTimeout)
		}
		r.wantSeqs(1, 5)

		// Phase 3: receiver up; a restart delivers the backlog, then new
		// events, without repeating the first five.
		r.down.Store(false)
		l = openLog(t, path, Options{Webhook: opts})
		r.settled(15)
		logN(t, l, 2)
		r.settled(17)
		l.Close()
		r.wantSeqs(1, 17)
	})
}

func TestWebhookUnusableCursorRedelivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReceiver(t)
		path := filepath.Join(t.TempDir(), "audit.log")
		spool := t.TempDir()
		l := openLog(t, path, Options{Webhook: hookOpts(r, spool)})
		logN(t, l, 3)
		r.settled(3)
		l.Close()
		cur := filepath.Join(spool, "audit.log.webhook-cursor")
		if err := os.WriteFile(cur, []byte(`{"offset":10,"seq":3,"hash":"00"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, path, Options{Webhook: hookOpts(r, spool)})
		r.settled(6)
		l.Close()
		// Duplicates, never gaps: the receiver drops them by (replica, seq).
		if got := r.got(); !slices.Equal(got, []uint64{1, 2, 3, 1, 2, 3}) {
			t.Errorf("receiver got %v, want the log delivered again from the start", got)
		}
	})
}

// The refusal to follow redirects lives in the default client, which dials
// for real, so this test uses loopback servers and no bubble; it waits for
// the deliverer's first post, not for a duration.
func TestWebhookDoesNotFollowRedirects(t *testing.T) {
	r := newReceiver(t)
	target := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(target.Close)
	hit := make(chan struct{})
	var once sync.Once
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		once.Do(func() { close(hit) })
		http.Redirect(w, req, target.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)
	opts := hookOpts(r, t.TempDir())
	opts.URL = redirect.URL
	opts.Client = nil
	opts.CloseTimeout = 50 * time.Millisecond
	l := openLog(t, filepath.Join(t.TempDir(), "audit.log"), Options{Webhook: opts})
	logN(t, l, 2)
	select {
	case <-hit:
	case <-time.After(10 * time.Second):
		t.Fatal("the deliverer never posted to the configured URL")
	}
	// Close returns after the deliverer stopped, so a followed redirect
	// (which happens inside the first post) has reached the target by now.
	l.Close()
	if n := r.attempts(); n != 0 {
		t.Errorf("redirect target received %d requests, want none", n)
	}
}

func TestWebhookOptionsValidatedAndSecretNeverShown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	for name, opts := range map[string]WebhookOptions{
		"no secret":    {URL: "https://siem.example/hook"},
		"no url":       {Secret: hookSecret},
		"relative url": {URL: "/hook", Secret: hookSecret},
		"other scheme": {URL: "ftp://siem.example/hook", Secret: hookSecret},
	} {
		if l, err := New(path, Options{Webhook: &opts}); err == nil {
			l.Close()
			t.Errorf("%s: New = nil error, want one", name)
		}
	}

	opts := WebhookOptions{URL: "https://siem.example/hook", Secret: hookSecret}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "webhook", opts)
	for _, s := range []string{fmt.Sprint(opts), fmt.Sprintf("%+v", opts), logged.String()} {
		if strings.Contains(s, string(hookSecret)) || strings.Contains(s, fmt.Sprint(hookSecret)) {
			t.Errorf("formatted options reveal the secret: %s", s)
		}
		if !strings.Contains(s, "siem.example") {
			t.Errorf("formatted options lost the host: %s", s)
		}
	}
}
