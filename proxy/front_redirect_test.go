package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestHTTPRedirect(t *testing.T) {
	cfg := frontTestConfig(t)
	cfg.PublicURL = "https://gate.test:8443"
	cfg.Listen.HTTP = "127.0.0.1:0"
	f := runFront(t, FrontConfig{Config: cfg})
	tests := []struct {
		name         string
		req          string
		wantCode     int
		wantLocation string
	}{
		{"portal", "GET /a/b?c=d HTTP/1.1\r\nHost: gate.test\r\n\r\n", 308, "https://gate.test:8443/a/b?c=d"},
		{"route, host case and port", "POST /x HTTP/1.1\r\nHost: App.Test:80\r\nContent-Length: 0\r\n\r\n", 308, "https://app.test:8443/x"},
		{"double slash stays on host", "GET //evil.test/ HTTP/1.1\r\nHost: gate.test\r\n\r\n", 308, "https://gate.test:8443//evil.test/"},
		{"unknown host", "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n", 404, ""},
		{"absolute URI", "GET http://evil.test/ HTTP/1.1\r\nHost: gate.test\r\n\r\n", 400, ""},
		{"CONNECT", "CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n", 400, ""},
		{"ACME challenge without ACME", "GET /.well-known/acme-challenge/abc HTTP/1.1\r\nHost: gate.test\r\n\r\n", 308, "https://gate.test:8443/.well-known/acme-challenge/abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", f.HTTPAddr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, tt.req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if got := resp.Header.Get("Location"); got != tt.wantLocation {
				t.Errorf("Location = %q, want %q", got, tt.wantLocation)
			}
		})
	}
}
