package h2

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2/hpack"
)

// Input path. An idle connection should cost little more than its socket,
// so no read buffer stays with it: while the connection has no open stream
// and nothing buffered, the reader is parked or waits in a read into a
// small array of the connection's (waitIdle), and borrows a pooled buffer
// only when bytes arrive; the buffer goes back to the pool the next time
// the connection is idle and drained. A busy connection keeps its buffer,
// so the request path pays nothing extra.

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
			n, err := b.c.readNet(p, false) // a large payload goes straight to its place
			b.total += int64(n)
			return n, err
		}
		n, err := b.c.readNet(b.buf, true)
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

// idleGrace is how long a connection stays idle before it sheds what it
// can rebuild and its reader is parked. A connection that calls again
// within it (a client making steady calls goes idle between them) pays
// nothing for going idle: no parking, no rebuilding, no new goroutine.
var idleGrace atomic.Int64 // nanoseconds; 100 ms (settable for tests)

func init() { idleGrace.Store(int64(100 * time.Millisecond)) }

// graceLocked makes the read deadline fire no later than idleGrace after
// the connection went idle. The codec calls it when the last stream ends,
// which happens on other goroutines (the response comes from upstream)
// while the reader usually waits for input, holding a read buffer on a
// stack its handlers grew: the deadline is what reaches it there.
func (c *Conn) graceLocked() {
	if c.closed || c.lingering.Load() {
		return
	}
	if t := c.idleSince.Add(time.Duration(idleGrace.Load())); c.deadline.IsZero() || t.Before(c.deadline) {
		c.deadline = t
		c.nc.SetReadDeadline(t)
	}
}

// atIdleBoundary reports, on the reader, after a read deadline, whether
// the read was waiting at a frame boundary of a connection that has no
// open stream: it should then stop and wait as idle connections do.
func (c *Conn) atIdleBoundary() bool {
	return !c.midFrame && c.split.between() && c.ActiveStreams() == 0 && !c.lingering.Load()
}

// waitIdle waits, with no buffer borrowed, for the next bytes of an idle
// connection. Called by the reader when no stream is open and nothing is
// buffered.
func (c *Conn) waitIdle() error {
	c.rd.release()
	n, err := c.idleRead()
	if n == 0 {
		return err // errHandedOver: c is no longer ours to touch
	}
	c.worked = true
	c.rd.total += int64(n)
	c.newStreams = 0
	c.rd.borrow()
	c.rd.r, c.rd.w = 0, copy(c.rd.buf, c.rd.small[:n])
	return nil
}

// shed lets go of what an idle connection can rebuild when it is busy
// again: the Framer (its largest payload buffer, its last frame) and the
// HPACK encoder with its dynamic table. The decoder's table is the peer's
// to manage and stays; only the header list it last decoded is dropped.
// Between ReadFrame calls a Framer holds no other state (header blocks
// are read whole).
func (c *Conn) shed() {
	c.fr = nil
	c.blk.dec.SetEmitFunc(noEmit)
	c.mu.Lock()
	if c.active == 0 {
		c.streams = nil // a map keeps its buckets; newStreamLocked makes one
	}
	if c.enc != nil {
		c.enc = nil
		c.hbuf = bytes.Buffer{}
		c.encUsed = true
	}
	c.mu.Unlock()
}

func noEmit(hpack.HeaderField) {}

// encoderLocked returns the HPACK encoder, making one if shed dropped it.
// A new encoder first empties the peer's copy of the dynamic table (a
// size update to 0, then back), since it does not know what the old one
// put there (RFC 7541 4.2).
func (c *Conn) encoderLocked() *hpack.Encoder {
	if c.enc == nil {
		limit := c.peerTableSize
		if c.role == Server {
			// Toward clients the dynamic table is not used, as nginx and
			// HAProxy do: each response costs a few bytes more, but the
			// encoder keeps no state per client, and a client whose
			// decoder does not evict (nginx's test client) still reads
			// every field.
			limit = 0
		}
		c.enc = hpack.NewEncoder(&c.hbuf)
		c.enc.SetMaxDynamicTableSizeLimit(limit)
		if c.encUsed && limit > 0 {
			c.enc.SetMaxDynamicTableSize(0)
			c.enc.SetMaxDynamicTableSize(min(limit, 4096))
		}
	}
	return c.enc
}

// idleRead reads the first bytes of an idle connection into rd.small.
// Within idleGrace it waits as it is. After, it sheds, then parks a socket
// that can be parked, or else hands reading over to a fresh goroutine if
// this one ran handlers (their stack would stay). errHandedOver: another
// goroutine now owns the connection.
func (c *Conn) idleRead() (int, error) {
	for {
		c.mu.Lock()
		fresh := time.Since(c.idleSince) < time.Duration(idleGrace.Load())
		if fresh {
			c.graceLocked()
		}
		c.mu.Unlock()
		if fresh {
			n, err := c.readNet(c.rd.small[:], true)
			if err == errGoIdle {
				continue
			}
			return n, err
		}
		c.shed()
		if c.raw == nil {
			if c.worked {
				c.worked = false
				go c.run()
				return 0, errHandedOver
			}
			return c.readNet(c.rd.small[:], false)
		}
		n, err := c.tryRead(c.rd.small[:])
		var ne net.Error
		switch {
		case err == errWouldBlock:
			if c.park() {
				return 0, errHandedOver
			}
			return c.readNet(c.rd.small[:], false)
		case errors.As(err, &ne) && ne.Timeout():
			if !c.onReadTimeout() {
				return 0, err
			}
		default:
			return n, err
		}
	}
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
