package proxy

import (
	"net/http"
	"time"
)

// frontHTTP2Config sets every HTTP/2 server limit explicitly, so that a
// Go upgrade cannot loosen one silently. Go's server also bounds what
// these do not: CONTINUATION frames count against MaxHeaderBytes (the
// 2024 CONTINUATION flood), and streams reset before their handler runs
// count against MaxConcurrentStreams (rapid reset, CVE-2023-44487).
func frontHTTP2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		// Browsers use at most about 100 parallel streams; more only
		// multiplies the handlers one connection can keep busy.
		MaxConcurrentStreams: 100,
		// The protocol minimum: no peer needs bigger frames to a proxy,
		// and each one is buffered whole.
		MaxReadFrameSize: 16 << 10,
		// HPACK dynamic tables at the RFC 9113 default: 4 KiB of state per
		// direction per connection.
		MaxDecoderHeaderTableSize: 4 << 10,
		MaxEncoderHeaderTableSize: 4 << 10,
		// Flow-control windows bound the request body buffered per
		// connection and per stream for a slow handler: 1 MiB and 256 KiB
		// (still about 5 MB/s per upload at 50 ms round trip).
		MaxReceiveBufferPerConnection: 1 << 20,
		MaxReceiveBufferPerStream:     256 << 10,
		// A client that stops reading its responses loses the connection
		// after the same idle write time as on HTTP/1.1.
		WriteByteTimeout: frontWriteIdle,
		// A connection that sends nothing for 30 s is pinged, and closed
		// if the ping is not answered in 15 s: dead peers do not hold
		// connection slots until the idle timeout.
		SendPingTimeout: 30 * time.Second,
		PingTimeout:     15 * time.Second,
	}
}
