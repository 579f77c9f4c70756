package h2

import (
	"slices"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Output path. Everything a connection sends is appended, under c.mu, to
// c.out; queued stream DATA waits in its Stream until the writer frames it.
// A writer goroutine is started when output appears and exits when there is
// none, so frames produced by many streams (and by other connections'
// readers) between two writes leave in one syscall, and an idle connection
// has no writer.

// bufPool holds output buffers. A connection keeps the *[]byte it borrowed
// beside the slice (outBox, spareBox) and returns that same box, so putting
// a buffer back allocates nothing.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// putBuf returns b, borrowed in box, to the pool; a buffer that grew past
// 1 MiB is left to the collector.
func putBuf(box *[]byte, b []byte) {
	if box == nil || cap(b) == 0 || cap(b) > 1<<20 {
		return
	}
	*box = b[:0]
	bufPool.Put(box)
}

// outBuf returns c.out, first borrowing a pooled buffer if the connection
// holds none (it holds none while idle). Every append to c.out goes
// through it, so output never grows from a nil slice.
func (c *Conn) outBuf() []byte {
	if c.out == nil {
		c.outBox = bufPool.Get().(*[]byte)
		c.out = (*c.outBox)[:0]
	}
	return c.out
}

// kickLocked makes sure a writer will look at the connection.
func (c *Conn) kickLocked() {
	if c.writing || c.lingering.Load() || c.closed && !c.closeWhenDrained {
		return
	}
	c.writing = true
	go c.writeLoop()
}

// writeLoop writes until nothing is pending, then exits.
func (c *Conn) writeLoop() {
	for {
		c.mu.Lock()
		c.fillLocked()
		if len(c.out) == 0 || c.closed && !c.closeWhenDrained {
			c.writing = false
			closeNow := c.closeWhenDrained && len(c.out) == 0
			putBuf(c.outBox, c.out)
			putBuf(c.spareBox, c.spare)
			c.out, c.spare, c.outBox, c.spareBox = nil, nil, nil, nil
			credits := c.takeCreditsLocked()
			c.signalDrainedLocked()
			c.mu.Unlock()
			deliver(credits)
			if closeNow {
				c.closeDrained()
			}
			return
		}
		if len(c.out) > 16*c.lim.MaxOutBuffer {
			// The peer does not read: give up on it rather than grow.
			c.closed = true
			c.writing = false
			c.signalDrainedLocked()
			c.mu.Unlock()
			c.closeSocket()
			return
		}
		// Swap buffers: appends go on into the spare (borrowed by outBuf
		// if there is none yet) while buf is written.
		buf, box := c.out, c.outBox
		c.out, c.outBox = c.spare, c.spareBox
		c.spare, c.spareBox = nil, nil
		c.inflight = len(buf)
		credits := c.takeCreditsLocked()
		c.mu.Unlock()

		deliver(credits)
		if c.lim.WriteTimeout > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(c.lim.WriteTimeout))
		}
		_, err := c.nc.Write(buf)

		c.mu.Lock()
		c.inflight = 0
		c.spare, c.spareBox = buf[:0], box
		if err != nil {
			c.writing = false
			c.closed = true
			if c.closeErr == nil {
				c.closeErr = err
			}
			c.signalDrainedLocked()
			c.mu.Unlock()
			c.closeSocket() // the reader sees it and cleans up
			return
		}
		c.signalDrainedLocked()
		c.mu.Unlock()
	}
}

// takeCreditsLocked hands the writer's credit records to the caller.
func (c *Conn) takeCreditsLocked() []credit {
	if len(c.credits) == 0 {
		return nil
	}
	cr := c.credits
	c.credits = nil
	return cr
}

func deliver(cr []credit) {
	for _, x := range cr {
		x.h.HandleSent(x.s, x.n)
	}
}

// flushAndWait gives the writer up to d to send what is queued; used before
// closing after a GOAWAY so the peer learns why.
func (c *Conn) flushAndWait(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		done := !c.writing
		c.mu.Unlock()
		if done {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// enqueueLocked puts s on the send queue if it is not there.
func (c *Conn) enqueueLocked(s *Stream) {
	if s.queued || s.sendDone {
		return
	}
	s.queued = true
	c.queue = append(c.queue, s)
	c.kickLocked()
}

func (c *Conn) dropQueuedLocked(s *Stream) {
	s.pend = nil
	s.off = 0
	s.trailers = nil
	if !s.queued {
		return
	}
	s.queued = false
	if i := slices.Index(c.queue, s); i >= 0 {
		c.queue = slices.Delete(c.queue, i, i+1) // clears the freed slot
	}
}

// fillLocked frames queued stream output into c.out, one chunk per stream
// per round so streams share the connection fairly, while the output
// buffer has room and the connection window allows.
func (c *Conn) fillLocked() {
	for len(c.queue) > 0 && len(c.out) < c.lim.MaxOutBuffer {
		s := c.queue[0]
		c.queue[0] = nil // the array must not keep the stream alive
		c.queue = c.queue[1:]
		s.queued = false
		more, connBlocked := c.frameQueuedLocked(s)
		if more {
			s.queued = true
			c.queue = append(c.queue, s)
		}
		if connBlocked {
			break
		}
	}
	if len(c.queue) == 0 {
		c.queue = nil
	}
}

// frameQueuedLocked frames one chunk of s's queued output. more says s
// still has output it could send; connBlocked says the connection window
// is exhausted.
func (c *Conn) frameQueuedLocked(s *Stream) (more, connBlocked bool) {
	if s.sendDone {
		return false, false
	}
	if rest := len(s.pend) - s.off; rest > 0 {
		n := c.frameDataLocked(s, s.pend[s.off:], s.endQueued && s.trailers == nil, 1)
		s.off += n
		if s.off == len(s.pend) {
			s.pend, s.off = s.pend[:0], 0
		}
		if n < rest {
			if c.sendWindow <= 0 {
				return true, true
			}
			if s.sendWindow <= 0 {
				s.blocked = true
				return false, false
			}
			return true, false
		}
		if s.sendDone {
			return false, false
		}
	}
	switch {
	case s.trailers != nil:
		c.writeHeadersLocked(s.id, s.trailers, true)
		s.trailers = nil
		c.endSentLocked(s)
	case s.endQueued:
		c.out = appendFrameHeader(c.outBuf(), 0, http2.FrameData, http2.FlagDataEndStream, s.id)
		c.endSentLocked(s)
	}
	return false, false
}

// frameDataLocked frames up to maxChunks DATA frames of p on s, within the
// stream and connection windows; end sets END_STREAM on the frame carrying
// the last byte. It returns the bytes framed and records them as credit.
func (c *Conn) frameDataLocked(s *Stream, p []byte, end bool, maxChunks int) int {
	chunk := c.chunkLocked()
	sent := 0
	for i := 0; i < maxChunks && len(p) > 0; i++ {
		n := len(p)
		if n > chunk {
			n = chunk
		}
		if int64(n) > s.sendWindow {
			n = int(max(s.sendWindow, 0))
		}
		if int64(n) > c.sendWindow {
			n = int(max(c.sendWindow, 0))
		}
		if n == 0 {
			break
		}
		var flags http2.Flags
		last := n == len(p)
		if last && end {
			flags = http2.FlagDataEndStream
		}
		c.out = appendFrameHeader(c.outBuf(), n, http2.FrameData, flags, s.id)
		c.out = append(c.outBuf(), p[:n]...)
		p = p[n:]
		sent += n
		s.sendWindow -= int64(n)
		c.sendWindow -= int64(n)
		if last && end {
			c.endSentLocked(s)
		}
	}
	if sent > 0 {
		s.sentBytes += int64(sent)
		if k := len(c.credits); k > 0 && c.credits[k-1].s == s {
			c.credits[k-1].n += sent
		} else {
			c.credits = append(c.credits, credit{s, s.h, sent})
		}
	}
	return sent
}

// chunkLocked is the largest DATA payload we send: ChunkSize, capped by
// the peer's SETTINGS_MAX_FRAME_SIZE.
func (c *Conn) chunkLocked() int {
	return min(c.lim.ChunkSize, int(c.peerMaxFrame))
}

// endSentLocked records that END_STREAM went out on s.
func (c *Conn) endSentLocked(s *Stream) {
	s.sendDone = true
	s.endQueued = false
	if s.rstAfter != 0 {
		c.out = appendRST(c.outBuf(), s.id, s.rstAfter)
		s.recvDone = true
	}
	c.maybeRemoveLocked(s)
}

// writeHeadersLocked HPACK-encodes fields and appends HEADERS (and
// CONTINUATION) frames. Encoding happens here, in wire order, because the
// HPACK dynamic table is shared by the whole connection.
func (c *Conn) writeHeadersLocked(id uint32, fields []hpack.HeaderField, end bool) {
	enc := c.encoderLocked()
	c.hbuf.Reset()
	for _, f := range fields {
		if c.role == Server {
			// A field a backend sent never-indexed goes to the client as
			// a plain literal, which no dynamic table holds either
			// (nginx does the same). Toward backends the flag stays: an
			// upstream connection carries many clients' requests, the
			// case RFC 7541 7.1.3 protects.
			f.Sensitive = false
		}
		enc.WriteField(f)
	}
	block := c.hbuf.Bytes()
	max := int(c.peerMaxFrame)
	typ := http2.FrameHeaders
	for first := true; first || len(block) > 0; first = false {
		n := min(len(block), max)
		var flags http2.Flags
		if first && end {
			flags |= http2.FlagHeadersEndStream
		}
		if n == len(block) {
			flags |= http2.FlagHeadersEndHeaders
		}
		c.out = appendFrameHeader(c.outBuf(), n, typ, flags, id)
		c.out = append(c.outBuf(), block[:n]...)
		block = block[n:]
		typ = http2.FrameContinuation
	}
}

func (c *Conn) writeSettingsLocked(settings ...http2.Setting) {
	c.out = appendFrameHeader(c.outBuf(), 6*len(settings), http2.FrameSettings, 0, 0)
	for _, s := range settings {
		c.out = append(c.outBuf(), byte(s.ID>>8), byte(s.ID), byte(s.Val>>24), byte(s.Val>>16), byte(s.Val>>8), byte(s.Val))
	}
}

func appendFrameHeader(b []byte, length int, t http2.FrameType, flags http2.Flags, id uint32) []byte {
	return append(b, byte(length>>16), byte(length>>8), byte(length), byte(t), byte(flags),
		byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
}

func appendWindowUpdate(b []byte, id, inc uint32) []byte {
	b = appendFrameHeader(b, 4, http2.FrameWindowUpdate, 0, id)
	return append(b, byte(inc>>24), byte(inc>>16), byte(inc>>8), byte(inc))
}

func appendRST(b []byte, id uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 4, http2.FrameRSTStream, 0, id)
	return append(b, byte(code>>24), byte(code>>16), byte(code>>8), byte(code))
}

func appendPing(b []byte, ack bool, data [8]byte) []byte {
	var flags http2.Flags
	if ack {
		flags = http2.FlagPingAck
	}
	b = appendFrameHeader(b, 8, http2.FramePing, flags, 0)
	return append(b, data[:]...)
}

func appendGoAway(b []byte, last uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 8, http2.FrameGoAway, 0, 0)
	return append(b, byte(last>>24), byte(last>>16), byte(last>>8), byte(last),
		byte(code>>24), byte(code>>16), byte(code>>8), byte(code))
}
