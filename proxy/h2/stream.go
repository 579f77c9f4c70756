package h2

import (
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Stream is one HTTP/2 stream. Its methods may be called from any
// goroutine; they never block on the network.
type Stream struct {
	c  *Conn
	id uint32
	h  StreamHandler // set before any event is delivered, then fixed

	// Guarded by c.mu.
	sendWindow    int64
	recvWindow    int32 // what the peer may still send us
	recvUnacked   int32 // credit not yet returned in a WINDOW_UPDATE
	pend          []byte
	off           int
	endQueued     bool
	trailers      []hpack.HeaderField
	rstAfter      http2.ErrCode // RST_STREAM to send right after END_STREAM
	queued        bool          // on c.queue
	blocked       bool          // waiting for stream window
	sendDone      bool          // END_STREAM or RST_STREAM sent
	recvDone      bool          // END_STREAM or RST_STREAM received
	contentLength int64         // declared request content-length, -1 if none
	recvBytes     int64
	recvSeen      bool // DATA arrived since the last timeout tick
	head          bool // Client role: the request is HEAD
	gotResponse   bool // Client role: the final response header arrived
	ticked        bool // the stream has lived through a timeout tick
	sentBytes     int64
}

// ID returns the stream identifier.
func (s *Stream) ID() uint32 { return s.id }

// Conn returns the stream's connection.
func (s *Stream) Conn() *Conn { return s.c }

// WriteHeaders sends a header block. If DATA is still queued on the stream
// the block is sent after it (trailers); end closes our side.
func (s *Stream) WriteHeaders(fields []hpack.HeaderField, end bool) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.sendDone || s.endQueued || c.closed {
		return ErrStreamDone
	}
	if len(s.pend) > s.off {
		if !end {
			return ErrStreamDone // only trailers may follow queued data
		}
		s.trailers = append(s.trailers[:0], fields...)
		s.endQueued = true
		c.enqueueLocked(s)
		return nil
	}
	c.writeHeadersLocked(s.id, fields, end)
	if end {
		c.endSentLocked(s)
	}
	c.kickLocked()
	return nil
}

// WriteData sends p (copied) as DATA, respecting flow control: what cannot
// go now waits in the stream. end closes our side after p. HandleSent
// reports each part as it is framed.
func (s *Stream) WriteData(p []byte, end bool) error {
	c := s.c
	c.mu.Lock()
	if s.sendDone || s.endQueued || c.closed {
		c.mu.Unlock()
		return ErrStreamDone
	}
	sent := 0
	if len(s.pend) == s.off && !s.queued && len(c.out) < c.lim.MaxOutBuffer {
		// Fast path: frame straight from p.
		sent = c.frameDataLocked(s, p, end, len(p)/c.chunkLocked()+1)
		p = p[sent:]
		if sent > 0 {
			c.kickLocked()
		}
	}
	if !s.sendDone && (len(p) > 0 || end) {
		s.pend = append(s.pend, p...)
		s.endQueued = end
		if len(p) > 0 && s.sendWindow <= 0 {
			s.blocked = true
		} else {
			c.enqueueLocked(s)
		}
	}
	// Whoever holds c.mu may deliver pending credit records; each is
	// taken exactly once.
	cr := c.takeCreditsLocked()
	c.mu.Unlock()
	deliver(cr)
	return nil
}

// Reset ends the stream now with RST_STREAM code, dropping queued output.
// The handler is not called.
func (s *Stream) Reset(code http2.ErrCode) {
	c := s.c
	c.mu.Lock()
	c.resetLocked(s, code)
	c.mu.Unlock()
}

func (c *Conn) resetLocked(s *Stream, code http2.ErrCode) {
	if s.sendDone && s.recvDone {
		return
	}
	c.dropQueuedLocked(s)
	if !c.closed && !(s.sendDone && s.rstAfter != 0) {
		c.out = appendRST(c.outBuf(), s.id, code)
		c.kickLocked()
	}
	s.sendDone, s.recvDone = true, true
	c.removeLocked(s)
}

// ResetAfterEnd asks for RST_STREAM code right after our END_STREAM has
// been sent: a complete response to a request the peer has not finished
// sending (RFC 9113 8.1, with NO_ERROR).
func (s *Stream) ResetAfterEnd(code http2.ErrCode) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.recvDone {
		return
	}
	if s.sendDone {
		c.resetLocked(s, code)
		return
	}
	s.rstAfter = code
}

// Credit returns n bytes of stream-level receive window to the peer, once
// the data delivered by HandleData has been passed on. WINDOW_UPDATEs are
// batched until a quarter of the window is owed.
func (s *Stream) Credit(n int) {
	if n <= 0 {
		return
	}
	c := s.c
	c.mu.Lock()
	if s.recvDone || c.closed {
		c.mu.Unlock()
		return
	}
	s.recvUnacked += int32(n)
	if s.recvUnacked >= c.lim.StreamWindow/4 {
		c.out = appendWindowUpdate(c.outBuf(), s.id, uint32(s.recvUnacked))
		s.recvWindow += s.recvUnacked
		s.recvUnacked = 0
		c.kickLocked()
	}
	c.mu.Unlock()
}

// BytesSent returns the DATA payload bytes framed on the stream so far.
func (s *Stream) BytesSent() int64 {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.sentBytes
}

// SetHandler sets the stream's handler. A Server-role handler calls it
// inside HandleStream before making the stream visible to other
// goroutines (e.g. before opening an upstream stream whose events write
// to it), so that every event and credit reaches the right handler.
func (s *Stream) SetHandler(h StreamHandler) {
	s.c.mu.Lock()
	s.h = h
	s.c.mu.Unlock()
}

// SendWindow returns what the peer's stream window lets us send on s now,
// in bytes (it may be negative after the peer shrank its initial window).
func (s *Stream) SendWindow() int64 {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.sendWindow
}

// Grant raises the peer's window on s by n bytes beyond what Credit
// returns, at once (one WINDOW_UPDATE): the proxy passes on a window its
// own client opened. It does nothing on a finished stream.
func (s *Stream) Grant(n int) {
	c := s.c
	c.mu.Lock()
	if n > 0 && !s.recvDone && !c.closed && int64(s.recvWindow)+int64(n) <= maxWindow {
		s.recvWindow += int32(n)
		c.out = appendWindowUpdate(c.outBuf(), s.id, uint32(n))
		c.kickLocked()
	}
	c.mu.Unlock()
}

// WindowHandler is implemented by a StreamHandler that wants to know when
// the peer opens a stream's window: HandleWindow(s, n) runs on the reader
// goroutine after the peer raised s's send window by n bytes (a stream
// WINDOW_UPDATE, or a larger SETTINGS_INITIAL_WINDOW_SIZE).
type WindowHandler interface {
	HandleWindow(s *Stream, n int)
}
