package h2

import (
	"sync"
	"sync/atomic"
)

// Input path. An idle connection should cost little more than its socket
// and its parked reader goroutine, so no read buffer stays with it: while
// the connection has no open stream and nothing buffered, the reader waits
// in a read into a small array of the connection's (waitIdle) and borrows a
// pooled buffer only when bytes arrive; the buffer goes back to the pool
// the next time the connection is idle and drained. A busy connection keeps
// its buffer, so the request path pays nothing extra.

// bigFrameLen is the payload size above which the Framer is replaced when
// the connection next goes idle: http2.Framer keeps its largest payload
// buffer for good, up to 16 KiB per connection.
const bigFrameLen = 1 << 10

var readPool sync.Pool // of *[]byte

// getReadBuf borrows a read buffer of size bytes.
func getReadBuf(size int) *[]byte {
	if v, ok := readPool.Get().(*[]byte); ok && cap(*v) >= size {
		*v = (*v)[:size]
		return v
	}
	b := make([]byte, size)
	return &b
}

// reader is the buffered reader under the Framer.
type reader struct {
	c     *Conn
	pre   []byte  // bytes read from the socket before NewConn
	bufp  *[]byte // borrowed from readPool while bytes are pending, else nil
	buf   []byte  // *bufp
	r, w  int     // unread bytes are buf[r:w]
	total int64   // bytes read from the socket (see checkFlood)
	// small takes the first bytes after an idle wait (waitIdle). It lives
	// here rather than on the stack because a slice passed to net.Conn.Read
	// escapes, which would cost an allocation per idle wake-up.
	small [32]byte
}

// drained reports whether no read byte is pending.
func (b *reader) drained() bool { return b.r == b.w && len(b.pre) == 0 }

// Read implements io.Reader for the Framer.
func (b *reader) Read(p []byte) (int, error) {
	if len(b.pre) > 0 {
		n := copy(p, b.pre)
		b.pre = b.pre[n:]
		if len(b.pre) == 0 {
			b.pre = nil
		}
		return n, nil
	}
	if b.r == b.w {
		if err := b.c.checkFlood(); err != nil {
			return 0, err
		}
		if b.buf == nil {
			b.borrow()
		}
		if len(p) >= len(b.buf) {
			n, err := b.c.readNet(p) // a large payload goes straight to its place
			b.total += int64(n)
			return n, err
		}
		n, err := b.c.readNet(b.buf)
		b.total += int64(n)
		b.c.newStreams = 0 // a new read batch
		b.r, b.w = 0, n
		if n == 0 {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	b.c.midFrame = true // cleared when ReadFrame returns
	return n, nil
}

func (b *reader) borrow() {
	b.bufp = getReadBuf(b.c.lim.ReadBufferSize)
	b.buf = *b.bufp
}

// release returns the buffer to the pool if nothing is pending in it.
func (b *reader) release() {
	if b.buf != nil && b.r == b.w {
		readPool.Put(b.bufp)
		b.bufp, b.buf, b.r, b.w = nil, nil, 0, 0
	}
}

// waitIdle waits, with no buffer borrowed, for the next bytes of an idle
// connection. Called by the reader when no stream is open and nothing is
// buffered.
func (c *Conn) waitIdle() error {
	c.rd.release()
	if c.bigFrame {
		// Only a new Framer lets go of the old one's payload buffer; the
		// HPACK context moves over. Between ReadFrame calls a Framer holds
		// no other state (header blocks are read whole).
		c.fr = c.newFramer()
		c.bigFrame = false
	}
	n, err := c.readNet(c.rd.small[:])
	if n == 0 {
		return err
	}
	c.rd.total += int64(n)
	c.newStreams = 0
	c.rd.borrow()
	c.rd.r, c.rd.w = 0, copy(c.rd.buf, c.rd.small[:n])
	return nil
}

// floodSlack is the frame overhead a connection may send beyond its
// payload, as nginx allows: 1 MiB (settable for tests only).
var floodSlack atomic.Int64

func init() { floodSlack.Store(1 << 20) }

// checkFlood applies nginx's flood rule to a Server-role connection: once
// an eighth of the bytes read exceeds the useful payload (DATA and
// request header lists) by more than floodSlack, the peer is sending
// frames that make us work for nothing (empty or tiny frames, PING,
// SETTINGS or CONTINUATION floods) and the connection is closed with
// ENHANCE_YOUR_CALM.
func (c *Conn) checkFlood() error {
	if c.role == Server && c.rd.total/8 > c.payload+floodSlack.Load() {
		return errFlood
	}
	return nil
}
