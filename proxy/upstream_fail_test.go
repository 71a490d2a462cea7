package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// TestUpstreamFailStatus: a request whose client hung up is counted as
// 499, never as the 502 of an unreachable upstream. Under load every
// benchmark run ends with requests in flight, and counting them as 502
// made a client leaving look like an upstream failure.
func TestUpstreamFailStatus(t *testing.T) {
	u, err := NewUpstream(config.Route{Name: "app", Host: "app.test", Upstream: "http://127.0.0.1:1",
		Timeout: config.Duration(time.Second)}, upSigner(t, upBolt(t), time.Now), upTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		err  error
		want int
	}{
		{"client left", gone, context.Canceled, StatusClientClosed},
		{"upstream unreachable", context.Background(), errors.New("dial tcp: connection refused"), http.StatusBadGateway},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequestWithContext(tc.ctx, http.MethodGet, "https://app.test/", nil)
			u.fail(w, r, tc.err)
			if w.Code != tc.want {
				t.Errorf("fail(%v) wrote %d, want %d", tc.err, w.Code, tc.want)
			}
		})
	}
}
