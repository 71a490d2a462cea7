package proxy

import (
	"context"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// serverErrorLog receives net/http's error log. TLS handshake failures
// (scanners, old clients, health probes) are counted and logged at debug;
// handler panics are errors; the rest is debug noise.
type serverErrorLog struct {
	logger            *slog.Logger
	handshakeFailures prometheus.Counter // nil: not counted
}

func (w *serverErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	ctx := context.Background()
	switch {
	case strings.Contains(msg, "TLS handshake error"):
		if w.handshakeFailures != nil {
			w.handshakeFailures.Inc()
		}
		w.logger.DebugContext(ctx, "TLS handshake failed.", "detail", msg)
	case strings.HasPrefix(msg, "http: panic serving"):
		w.logger.ErrorContext(ctx, "Handler panicked.", "detail", msg)
	default:
		w.logger.DebugContext(ctx, "HTTP server.", "detail", msg)
	}
	return len(p), nil
}
