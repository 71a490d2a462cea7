package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Client is a raw HTTP/2 connection to the front for app.test.
type h2Client struct {
	c  *tls.Conn
	fr *http2.Framer
	// noAck: another goroutine writes frames, so readUntil must not
	// (a Framer allows one reader and one writer at a time).
	noAck bool
}

func h2Dial(t *testing.T, s *hostileStack) *h2Client {
	t.Helper()
	c, err := tlsDial(s.f, &tls.Config{ServerName: "app.test", RootCAs: selfSignedPool(t, s.f.dataDir), NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q, want h2", p)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &h2Client{c: c, fr: fr}
}

// headerBlock encodes a request for path with extra header fields.
func headerBlock(method, path string, extra ...string) []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	for _, f := range [][2]string{{":method", method}, {":scheme", "https"}, {":authority", "app.test"}, {":path", path}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for i := 0; i+1 < len(extra); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return b.Bytes()
}

// readUntil reads frames until stop returns true or the connection ends;
// it returns the GOAWAY frame if one came.
func (h *h2Client) readUntil(stop func(http2.Frame) bool) (*http2.GoAwayFrame, error) {
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			return f, nil
		case *http2.SettingsFrame:
			if !f.IsAck() && !h.noAck {
				_ = h.fr.WriteSettingsAck()
			}
		}
		if stop(f) {
			return nil, nil
		}
	}
}

// concurrency is an upstream that holds each request until its client
// goes away and records the most it held at once.
type concurrency struct {
	now, max, total atomic.Int64
}

func (c *concurrency) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.total.Add(1)
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for m := c.max.Load(); n > m && !c.max.CompareAndSwap(m, n); m = c.max.Load() {
	}
	select {
	case <-r.Context().Done():
	case <-time.After(5 * time.Second):
	}
}

// TestFrontH2RapidReset opens and resets thousands of streams: the
// server ends the connection, and the upstream never holds more requests
// at once than the stream limit.
func TestFrontH2RapidReset(t *testing.T) {
	up := &concurrency{}
	s := startHostile(t, up, nil)
	h := h2Dial(t, s)
	block := headerBlock("GET", "/p/x")
	var werr error
	sent := 0
	for id := uint32(1); id < 20000; id += 2 {
		if werr = h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); werr != nil {
			break
		}
		if werr = h.fr.WriteRSTStream(id, http2.ErrCodeCancel); werr != nil {
			break
		}
		sent++
	}
	ga, rerr := h.readUntil(func(http2.Frame) bool { return false })
	if ga == nil && werr == nil && rerr == nil {
		t.Fatal("the connection survived 10,000 rapid resets")
	}
	t.Logf("sent %d streams; GOAWAY %v; write error %v; read error %v; upstream total %d, max at once %d",
		sent, ga, werr, rerr, up.total.Load(), up.max.Load())
	if m := up.max.Load(); m > 100 {
		t.Errorf("upstream held %d requests at once, more than the stream limit 100", m)
	}
}

// TestFrontH2ContinuationFlood sends a header block that never ends: the
// connection is closed once the block passes the header limit, long
// before the flood is over.
func TestFrontH2ContinuationFlood(t *testing.T) {
	seen := &upSeen{}
	s := startHostile(t, seen, nil)
	h := h2Dial(t, s)
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("GET", "/p/x"), EndHeaders: false}); err != nil {
		t.Fatal(err)
	}
	// Each fragment is a literal header of about 4 KiB, never indexed.
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	_ = enc.WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("a", 4000), Sensitive: true})
	frag := b.Bytes()
	done := make(chan error, 1)
	var written atomic.Int64
	h.noAck = true
	go func() {
		for i := 0; i < 100000; i++ { // 400 MB if nothing stopped it
			if err := h.fr.WriteContinuation(1, false, frag); err != nil {
				done <- err
				return
			}
			written.Add(int64(len(frag)))
		}
		done <- nil
	}()
	ga, rerr := h.readUntil(func(http2.Frame) bool { return false })
	_ = h.c.Close()
	werr := <-done
	if ga == nil && rerr == nil {
		t.Fatal("no GOAWAY and the connection stayed open")
	}
	if n := written.Load(); n > 8<<20 {
		t.Errorf("the server accepted %d bytes of CONTINUATION before closing", n)
	}
	if seen.count() != 0 {
		t.Error("the upstream received the flooded request")
	}
	t.Logf("GOAWAY %v, read error %v, write error %v, %d bytes written", ga, rerr, werr, written.Load())
}

// TestFrontH2ContentLengthMismatch sends more DATA than the declared
// content-length: the stream is reset and the upstream never gets the
// extra bytes.
func TestFrontH2ContentLengthMismatch(t *testing.T) {
	var mu sync.Mutex
	var got []string
	s := startHostile(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b)+" err="+errString(err))
		mu.Unlock()
	}), nil)
	h := h2Dial(t, s)
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
		BlockFragment: headerBlock("POST", "/p/upload", "content-length", "5")}); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteData(1, true, []byte("12345EXTRA-BYTES")); err != nil {
		t.Fatal(err)
	}
	var rst *http2.RSTStreamFrame
	ga, err := h.readUntil(func(f http2.Frame) bool {
		if r, ok := f.(*http2.RSTStreamFrame); ok && r.StreamID == 1 {
			rst = r
			return true
		}
		if hf, ok := f.(*http2.HeadersFrame); ok && hf.StreamID == 1 {
			t.Errorf("stream 1 got a response")
		}
		return false
	})
	if rst == nil {
		t.Fatalf("no RST_STREAM for stream 1 (GOAWAY %v, %v)", ga, err)
	}
	// A well-formed upload after it, on the same connection, completes;
	// the reset one, had it gone upstream, would have been there first.
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true,
		BlockFragment: headerBlock("POST", "/p/upload", "content-length", "5")}); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteData(3, true, []byte("67890")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.readUntil(func(f http2.Frame) bool {
		return f.Header().StreamID == 3 && f.Header().Flags.Has(http2.FlagDataEndStream)
	}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, g := range got {
		if strings.Contains(g, "EXTRA") {
			t.Errorf("upstream received the extra bytes: %q", g)
		}
	}
	if len(got) == 0 || got[len(got)-1] != "67890 err=nil" {
		t.Errorf("upstream received %q, want the second upload last", got)
	}
}

func errString(err error) string {
	if err == nil || errors.Is(err, io.EOF) {
		return "nil"
	}
	return err.Error()
}

// TestFrontH2Settings: the server announces the limits frontHTTP2Config
// sets.
func TestFrontH2Settings(t *testing.T) {
	s := startHostile(t, &upSeen{}, nil)
	h := h2Dial(t, s)
	got := map[http2.SettingID]uint32{}
	if _, err := h.readUntil(func(f http2.Frame) bool {
		sf, ok := f.(*http2.SettingsFrame)
		if ok && !sf.IsAck() {
			_ = sf.ForeachSetting(func(s http2.Setting) error { got[s.ID] = s.Val; return nil })
			return true
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	want := map[http2.SettingID]uint32{
		http2.SettingMaxConcurrentStreams: 100,
		http2.SettingMaxFrameSize:         16 << 10,
		http2.SettingHeaderTableSize:      4 << 10,
		http2.SettingInitialWindowSize:    256 << 10,
	}
	for id, v := range want {
		if got[id] != v {
			t.Errorf("%v = %d, want %d (all: %v)", id, got[id], v, got)
		}
	}
	if v, ok := got[http2.SettingMaxHeaderListSize]; !ok || v > 64<<10 {
		t.Errorf("MAX_HEADER_LIST_SIZE = %d (%v), want a bound near %d", v, ok, frontMaxHeaderBytes)
	}
}
