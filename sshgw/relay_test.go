package sshgw

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// chunkReader returns its chunks one per Read (each must fit the buffer it
// is given) and records the size of every buffer it was handed.
type chunkReader struct {
	chunks [][]byte
	sizes  []int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	r.sizes = append(r.sizes, len(p))
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	c := r.chunks[0]
	r.chunks = r.chunks[1:]
	if len(c) > len(p) {
		panic("chunk larger than the read buffer")
	}
	return copy(p, c), nil
}

func TestPipeBufferFollowsTheTraffic(t *testing.T) {
	chunk := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	// A keystroke, a read that fills the idle buffer, reads of a stream,
	// a burst of a few KiB (a screen redraw), and short output again.
	src := &chunkReader{chunks: [][]byte{
		chunk(1, 'a'),
		chunk(idleReadSize, 'b'),
		chunk(relayBufSize, 'c'),
		chunk(streamingRead, 'd'),
		chunk(streamingRead-1, 'e'),
		chunk(idleReadSize, 'f'),
		chunk(4<<10, 'g'),
		chunk(3, 'h'),
	}}
	var want bytes.Buffer
	for _, c := range src.chunks {
		want.Write(c)
	}
	s := &Server{now: time.Now, bufs: bufPool{size: relayBufSize}}
	c := &conn{s: s}
	var dst bytes.Buffer
	n := c.pipe(&dst, src)

	if n != int64(want.Len()) || !bytes.Equal(dst.Bytes(), want.Bytes()) {
		t.Fatalf("pipe copied %d bytes (%d in dst), want the %d given, in order", n, dst.Len(), want.Len())
	}
	wantSizes := []int{
		idleReadSize, // idle: the keystroke
		idleReadSize, // still idle: this read fills it
		relayBufSize, // streaming
		relayBufSize, // a full packet: still streaming
		relayBufSize, // less than a packet: back to idle
		idleReadSize, // fills it
		relayBufSize, // a burst: back to idle
		idleReadSize,
		idleReadSize, // EOF
	}
	if len(src.sizes) != len(wantSizes) {
		t.Fatalf("read buffers %v, want %v", src.sizes, wantSizes)
	}
	for i := range wantSizes {
		if src.sizes[i] != wantSizes[i] {
			t.Fatalf("read buffers %v, want %v", src.sizes, wantSizes)
		}
	}
	if c.activity.Load() == 0 {
		t.Error("pipe did not record activity")
	}
}
