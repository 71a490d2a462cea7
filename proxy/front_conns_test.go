package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestFrontSlowClientsDoNotLockOut is issue 12 defect 5: 2,000 clients on
// 127.0.0.1 that send a header and then hold their request body do not
// keep a person on 127.0.0.2 out; the refusals show in the metrics.
func TestFrontSlowClientsDoNotLockOut(t *testing.T) {
	// The upstream reads the whole body, so the hop waits for it and
	// each slow client holds its connection.
	s := startHostile(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}), nil)
	addr := s.f.HTTPSAddr().String()
	conf := &tls.Config{ServerName: "app.test", RootCAs: selfSignedPool(t, s.f.dataDir), NextProtos: []string{"http/1.1"}}

	const slow = 2000
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	sem := make(chan struct{}, 64) // bound the handshakes in flight on 2 cores
	for range slow {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
			raw, err := d.Dial("tcp", addr)
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, raw)
			mu.Unlock()
			c := tls.Client(raw, conf)
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if c.Handshake() != nil {
				return // refused at accept: closed before TLS
			}
			_ = c.SetDeadline(time.Time{})
			// A body promised and never sent.
			_, _ = io.WriteString(c, "POST /p/upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1000000\r\n\r\nx")
		}()
	}
	wg.Wait()

	refused := counterVecValue(t, s.f, "gatehouse_https_conn_refused_total", "per_source")
	if refused < slow-DefaultMaxConnsPerSource {
		t.Errorf("refused per source = %v, want at least %d", refused, slow-DefaultMaxConnsPerSource)
	}

	// Alice, on another address, still gets in at once.
	start := time.Now()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig: conf,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	resp, err := client.Get("https://app.test/p/dashboard")
	if err != nil {
		t.Fatalf("a person on another address: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || time.Since(start) > 2*time.Second {
		t.Fatalf("a person on another address: %d after %v", resp.StatusCode, time.Since(start))
	}
}

// counterVecValue reads one labelled value of a counter vector from the
// front's registry.
func counterVecValue(t *testing.T, f *Front, name, label string) float64 {
	t.Helper()
	mfs, err := f.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, label) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

func labelIs(m *dto.Metric, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == v {
			return true
		}
	}
	return false
}

// TestFrontBodyStages: a response sent while the request body is unread
// (a refusal) closes the connection at once instead of draining it, and a
// body that stops arriving loses the connection after the grace time.
func TestFrontBodyStages(t *testing.T) {
	s := startHostile(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "read "+strconv.FormatInt(n, 10)+" "+fmt.Sprint(err))
	}), nil)
	const grace = 1500 * time.Millisecond
	s.f.bodyGrace = grace
	conf := &tls.Config{ServerName: "app.test", RootCAs: selfSignedPool(t, s.f.dataDir), NextProtos: []string{"http/1.1"}}
	for _, tt := range []struct {
		name, req string
		wantCode  int
		wantAfter time.Duration // the connection ends no sooner
		wantBy    time.Duration // and no later
	}{
		// The gate refuses /admin without reading the body.
		{"refused with unread body", "POST /admin HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100000\r\n\r\n0123456789", http.StatusForbidden, 0, grace / 2},
		{"refused with unread chunked body", "POST /admin HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n", http.StatusForbidden, 0, grace / 2},
		// Admitted; the body stalls and the hop's read times out.
		{"stalled body", "POST /p/upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100000\r\n\r\n0123456789", 0, grace, 3 * grace},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tlsDial(s.f, conf)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			_ = c.SetDeadline(start.Add(5 * time.Second))
			_, _ = io.WriteString(c, tt.req)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if tt.wantCode != 0 && resp.StatusCode != tt.wantCode {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.wantCode)
				}
				if !resp.Close {
					t.Error("response does not close the connection")
				}
			} else if tt.wantCode != 0 {
				t.Fatalf("no response: %v", err)
			}
			// The connection ends: EOF, not our 5 s deadline.
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("connection still open after %v: %v", time.Since(start), err)
			}
			if d := time.Since(start); d < tt.wantAfter || d > tt.wantBy {
				t.Errorf("connection ended after %v, want between %v and %v", d, tt.wantAfter, tt.wantBy)
			}
		})
	}
}
