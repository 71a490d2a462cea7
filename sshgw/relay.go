package sshgw

import (
	"io"
	"sync"
)

// relayBufSize is one SSH packet's worth of payload: each read from a
// channel returns at most one packet and each write of this size is sent
// as one packet.
const relayBufSize = 32 << 10

// bufPool lends relay buffers, so a connection allocates none for data.
type bufPool struct{ p sync.Pool }

func (b *bufPool) get() *[]byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return v
	}
	buf := make([]byte, relayBufSize)
	return &buf
}

func (b *bufPool) put(v *[]byte) { b.p.Put(v) }

// pipe copies src to dst with a pooled buffer until src ends or a write
// fails, and records activity for the idle timeout. It returns the number
// of bytes copied.
func (c *conn) pipe(dst io.Writer, src io.Reader) int64 {
	bp := c.s.bufs.get()
	defer c.s.bufs.put(bp)
	n, _ := io.CopyBuffer(activityWriter{dst, c}, readerOnly{src}, *bp)
	return n
}

// activityWriter notes activity on every write.
type activityWriter struct {
	w io.Writer
	c *conn
}

func (a activityWriter) Write(p []byte) (int, error) {
	a.c.touch()
	return a.w.Write(p)
}

// readerOnly hides any WriterTo of the source so io.CopyBuffer uses the
// pooled buffer.
type readerOnly struct{ io.Reader }
