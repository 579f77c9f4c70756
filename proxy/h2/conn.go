package h2

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Role says which end of the connection we are.
type Role uint8

const (
	// Server accepts streams (the client-facing side of the proxy).
	Server Role = iota
	// Client opens streams (connections to upstream servers).
	Client
)

// ClientPreface is the connection preface a client sends first.
const ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// ConnHandler receives connection-level events, on the reader goroutine.
type ConnHandler interface {
	// HandleStream is called (Server role) for each new stream with its
	// request headers, already checked for HTTP/2 validity. It returns the
	// handler for the stream's further events; nil means the stream was
	// answered or reset inside HandleStream and later frames are dropped.
	HandleStream(s *Stream, f *http2.MetaHeadersFrame) StreamHandler
	// HandleGoAway is called when the peer sends GOAWAY: open no new
	// streams on this connection.
	HandleGoAway(c *Conn)
	// HandleClose is called once, after the connection has closed and
	// every open stream got HandleReset.
	HandleClose(c *Conn, err error)
}

// StreamHandler receives one stream's events. HandleHeaders, HandleData and
// HandleReset run on the connection's reader goroutine (HandleReset also on
// whichever goroutine closes the connection); HandleSent runs on whichever
// goroutine framed the data.
type StreamHandler interface {
	// HandleHeaders delivers a header block after the first: response
	// headers and trailers (Client role) or request trailers (Server).
	HandleHeaders(s *Stream, f *http2.MetaHeadersFrame)
	// HandleData delivers DATA; p is only valid during the call. The
	// handler calls s.Credit(len(p)) once it has passed the bytes on.
	HandleData(s *Stream, p []byte, end bool)
	// HandleReset reports that the stream ended abnormally: RST_STREAM from
	// the peer, an unprocessed stream after GOAWAY, or the connection
	// closing. err is a *StreamError.
	HandleReset(s *Stream, err error)
	// HandleSent reports that n bytes given to s.WriteData have been
	// framed onto the connection: the moment to return flow-control
	// credit to wherever they came from.
	HandleSent(s *Stream, n int)
}

// StreamError describes why a stream ended abnormally.
type StreamError struct {
	Code   http2.ErrCode
	Remote bool // the peer reset the stream or closed the connection
	// Conn: the whole connection ended. Code is then CANCEL, or
	// REFUSED_STREAM when a server closed before its SETTINGS (Client
	// role), having processed none of its streams.
	Conn bool
	Err  error // underlying cause, if any
}

func (e *StreamError) Error() string {
	var msg string
	switch {
	case e.Conn && e.Err != nil:
		msg = "connection closed: " + e.Err.Error()
	case e.Conn:
		msg = "connection closed"
	case e.Remote:
		msg = "stream reset by peer: " + e.Code.String()
	default:
		msg = "stream reset: " + e.Code.String()
	}
	return msg
}

func (e *StreamError) Unwrap() error { return e.Err }

// Errors returned when a stream cannot be opened or written.
var (
	ErrClosed      = errors.New("h2: connection closed")
	ErrGoingAway   = errors.New("h2: connection going away")
	ErrStreamLimit = errors.New("h2: peer's concurrent stream limit reached")
	ErrStreamDone  = errors.New("h2: stream closed")
)

// Conn is one HTTP/2 connection.
type Conn struct {
	nc   net.Conn
	role Role
	lim  Limits
	h    ConnHandler

	// Reader goroutine only.
	rd         reader
	fr         *http2.Framer // nil while idle (shed)
	gotFrame   bool          // a frame arrived since the last read timeout
	sawSetting bool          // the peer's first SETTINGS arrived
	// pending holds new streams not yet handed to HandleStream: while more
	// input is buffered a RST_STREAM for them may follow, and a stream the
	// client resets at once is then never opened upstream (rapid reset).
	pending    []pendingStream
	pendBuf    [2]pendingStream // pending's first backing array
	newStreams int              // streams begun since the last socket read
	payload    int64            // useful bytes in: DATA payload, request header lists
	midFrame   bool             // part of a frame has been read (HeaderTimeout)
	worked     bool             // this reader goroutine has handled frames (Start)
	done       func(error)      // Start's
	frames     uint64           // frames read
	tickFrames uint64           // frames at the last HeaderTimeout tick
	headerTick time.Time        // last HeaderTimeout check
	bodyTick   time.Time        // last BodyTimeout check

	ready     chan struct{} // closed on the peer's first SETTINGS (Client role)
	readyOnce sync.Once

	mu sync.Mutex
	// Output. out is appended under mu; the writer swaps it with spare.
	out      []byte
	spare    []byte
	outBox   *[]byte // pool entries of out and spare (see outBuf)
	spareBox *[]byte
	writing  bool          // a writer goroutine is running
	inflight int           // bytes the writer is writing now (see overBacklogLocked)
	drained  chan struct{} // closed when a paused reader may read again (pauseForBacklog)
	queue    []*Stream
	credits  []credit       // writer goroutine's scratch
	enc      *hpack.Encoder // nil until needed (encoderLocked)
	encUsed  bool           // an encoder was dropped (shed)
	hbuf     bytes.Buffer
	closed   bool
	closeErr error
	// closeWhenDrained: close the socket once output is flushed (set when a
	// GOAWAY'd connection has no streams left).
	closeWhenDrained bool
	// lingering: our side is shut down (FIN sent after the last frame);
	// the reader drops what still arrives until the peer closes or
	// lingerTimeout passes.
	lingering atomic.Bool

	streams      map[uint32]*Stream
	active       int // streams in the map
	started      int // streams ever opened or accepted
	idleSince    time.Time
	nextID       uint32 // Client: next stream id to open
	lastPeerID   uint32 // Server: highest peer stream id seen
	goAwaySent   bool
	goAwayRecv   bool
	goAwayLastID uint32 // Server: last stream id we process after GOAWAY

	sendWindow    int64 // connection-level window the peer gave us
	recvWindow    int64 // connection-level window we gave the peer
	recvUnacked   int64
	peerInitWin   int32
	peerMaxFrame  uint32
	peerTableSize uint32 // SETTINGS_HEADER_TABLE_SIZE
	peerMaxConc   uint32
	deadline      time.Time // the read deadline set last (guarded by mu)

	// Parking (park.go): set by parkInit on plain sockets.
	raw          syscall.RawConn
	rawRead      func(fd uintptr) bool
	rawBuf       []byte
	rawN         int
	rawErr       error
	fd           int32
	parked       bool // guarded by idlePoller.mu, as the next three
	noPark       bool // the socket is closing
	parkIdx      int  // in idlePoller.dl, or -1
	parkDeadline time.Time
	// Control replies (SETTINGS and PING ACKs) made lately; reader only.
	// See pauseForUnsent.
	ctrlOut   int
	ctrlSince time.Time
	ctrlCheck bool
	pingOut   bool      // we sent a liveness PING not yet answered
	pingAt    time.Time // when it went out
	heardAt   time.Time // the read timeout that last found a frame arrived (see onReadTimeout)
	glitches  int       // see Limits.MaxGlitches
	blk       blockReader
	split     splitter // Server role: between rd and the Framer
}

// pendingStream is a new stream waiting for the end of its read batch.
type pendingStream struct {
	s *Stream
	f *http2.MetaHeadersFrame
}

// Reasons a connection is closed with ENHANCE_YOUR_CALM.
var (
	errBacklog  = errors.New("h2: peer does not read: output backlog over its limit")
	errGlitches = errors.New("h2: too many glitches (reset streams, rejected headers, empty frames)")
	errFlood    = errors.New("h2: flood: too many frame bytes for the payload they carry")
	// errHeaderListTooLarge is nginx's "client sent too large header".
	errHeaderListTooLarge = errors.New("h2: client sent a header list over the limit (large_client_header_buffers)")
)

// Reader signals, never returned by Serve: errHandedOver ends a reader
// goroutine that handed reading to a fresh one; errGoIdle interrupts a
// read begun while a stream was open once the connection is idle.
var (
	errHandedOver = errors.New("h2: reading handed over")
	errGoIdle     = errors.New("h2: connection went idle")
)

type credit struct {
	s *Stream
	h StreamHandler
	n int
}

// NewConn makes a connection over nc. For the Server role br may hold bytes
// already read from nc (the client preface must have been consumed); pass
// nil to read nc directly. Nothing is written or read until Serve (or, for
// a Client, OpenStream), and our preface and SETTINGS go first.
func NewConn(nc net.Conn, br *bufio.Reader, role Role, lim Limits, h ConnHandler) *Conn {
	lim = lim.withDefaults()
	c := &Conn{
		nc:            nc,
		role:          role,
		lim:           lim,
		h:             h,
		streams:       make(map[uint32]*Stream),
		sendWindow:    65535,
		recvWindow:    65535,
		peerInitWin:   65535,
		peerMaxFrame:  16384,
		peerTableSize: 4096,
		peerMaxConc:   ^uint32(0),
		nextID:        1,
		idleSince:     time.Now(),
	}
	c.headerTick, c.bodyTick, c.heardAt, c.ctrlSince = c.idleSince, c.idleSince, c.idleSince, c.idleSince
	if role == Client {
		c.ready = make(chan struct{})
		// Streams may open before the server's SETTINGS (RFC 9113 3.4),
		// but its stream limit is unknown until then: one stream is
		// safe, more could be refused.
		c.peerMaxConc = 1
	}
	c.rd.c = c
	c.split.src, c.split.max, c.split.maxEmpty = &c.rd, maxFrameSize(lim), lim.MaxGlitches
	c.pending = c.pendBuf[:0]
	if br != nil && br.Buffered() > 0 {
		b, _ := br.Peek(br.Buffered())
		c.rd.pre = append([]byte(nil), b...)
	}
	c.parkInit()
	c.blk.dec = hpack.NewDecoder(4096, nil)
	c.fr = c.newFramer()
	c.queuePreface()
	return c
}

// newFramer makes the frame parser over c.rd. c.blk.dec carries the HPACK
// decoding context, which outlives any one Framer; the Framer decodes
// header blocks itself only for the Server role (see blockReader).
func (c *Conn) newFramer() *http2.Framer {
	var src io.Reader = &c.rd
	if c.role == Server {
		src = &c.split
	}
	fr := http2.NewFramer(io.Discard, src)
	fr.SetReuseFrames()
	// The Framer reads at most SETTINGS_MAX_FRAME_SIZE's initial value:
	// an upstream gets no larger limit (nginx does the same), and a
	// client's larger frames are split first (split.go). Anything larger
	// is a FRAME_SIZE_ERROR (RFC 9113 4.2).
	fr.SetMaxReadFrameSize(initialMaxFrameSize)
	if c.role == Server {
		fr.ReadMetaHeaders = c.blk.dec
	}
	fr.MaxHeaderListSize = c.lim.MaxHeaderListSize
	return fr
}

// initialMaxFrameSize is SETTINGS_MAX_FRAME_SIZE's initial value.
const initialMaxFrameSize = 1 << 14

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Ready is closed once the peer's first SETTINGS frame has arrived (Client
// role), so its stream limit is known, or once the connection is closed.
// Until then OpenStream takes one stream (RFC 9113 3.4 lets a client send
// frames right after its preface), with the protocol's initial window and
// frame size.
func (c *Conn) Ready() <-chan struct{} { return c.ready }

// isReady reports whether Ready is closed.
func (c *Conn) isReady() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

// Serve sends our preface and SETTINGS, then reads and dispatches frames
// until the connection ends. It returns the error that ended it. Start
// does the same without holding the caller.
func (c *Conn) Serve() error {
	done := make(chan error, 1)
	c.Start(func(err error) { done <- err })
	return <-done
}

// Start sends our preface and SETTINGS and serves the connection on
// goroutines of its own, returning at once. done, if not nil, is called
// with the error that ended the connection, after HandleClose.
//
// The reader does not keep one goroutine for the connection's life.
// Handlers run on it and may grow its stack to several KiB, which the
// runtime would keep for as long as the connection then waits. So once
// the connection has been idle (no stream open, no input pending) for
// idleGrace, the reader's goroutine ends: a plain socket is parked in the
// shared poller (park.go), which starts a new reader when input arrives;
// any other connection waits on a fresh goroutine, with a minimal stack.
func (c *Conn) Start(done func(error)) {
	c.done = done
	go c.serve()
}

// serve is the first reader. Our preface and SETTINGS go out from here,
// not from Start's caller, so that a stream the caller opens right after
// Start (Client role) usually leaves in the same write.
func (c *Conn) serve() {
	c.start()
	c.armReadDeadline(time.Now())
	c.run()
}

// run is the reader: it reads frames until the connection ends, then shuts
// it down, or until it hands reading over to a fresh goroutine.
func (c *Conn) run() {
	err := c.readLoop()
	if err == errHandedOver {
		return
	}
	clear(c.pendBuf[:])
	c.pending = nil
	c.rd.r = c.rd.w // what is left unread is of no use now
	c.rd.release()
	c.shutdown(err)
	if c.done != nil {
		c.done(err)
	}
}

// start sends our preface and SETTINGS, queued by NewConn. It is kept out
// of Serve, whose frame stays on the reader's stack for the connection's
// life.
//
//go:noinline
func (c *Conn) start() {
	c.mu.Lock()
	c.kickLocked()
	c.mu.Unlock()
}

// queuePreface queues our preface and SETTINGS, first in the output: a
// Client may open a stream as soon as Serve is started, before the Serve
// goroutine runs.
func (c *Conn) queuePreface() {
	c.mu.Lock()
	if c.role == Client {
		c.out = append(c.outBuf(), ClientPreface...)
		c.writeSettingsLocked(
			http2.Setting{ID: http2.SettingEnablePush, Val: 0},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(c.lim.StreamWindow)},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: c.lim.MaxHeaderListSize},
		)
	} else {
		c.writeSettingsLocked(
			http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: c.lim.MaxConcurrentStreams},
			http2.Setting{ID: http2.SettingMaxFrameSize, Val: c.split.max},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(c.lim.StreamWindow)},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: c.lim.MaxHeaderListSize},
		)
	}
	if inc := int64(c.lim.ConnWindow) - c.recvWindow; inc > 0 {
		c.out = appendWindowUpdate(c.outBuf(), 0, uint32(inc))
		c.recvWindow += inc
	}
	c.mu.Unlock()
}

// readLoop reads frames until an error.
func (c *Conn) readLoop() error {
	for {
		if len(c.pending) > 0 && c.rd.drained() {
			c.flushPending()
		}
		if c.rd.drained() && c.ActiveStreams() == 0 {
			if err := c.waitIdle(); err != nil {
				return err
			}
		}
		if c.fr == nil {
			c.fr = c.newFramer() // shed dropped it
		}
		f, err := c.fr.ReadFrame()
		if err == nil && c.role == Client {
			f, err = c.blk.next(f, c.lim.MaxHeaderListSize)
		}
		c.midFrame = false
		if err == errGoIdle {
			continue // the last stream ended while we waited for input
		}
		c.frames++
		if err != nil {
			if err = c.readError(err); err != nil {
				return err
			}
			continue
		}
		if f == nil {
			continue // a header block goes on in CONTINUATION frames
		}
		if c.lingering.Load() {
			continue // we are done with this connection: drop what comes
		}
		c.gotFrame = true
		if !c.sawSetting && c.role == Client {
			// The server's preface is a SETTINGS frame (RFC 9113 3.4). A
			// client's may be late: nginx serves one that sends frames
			// before it (its own test client does), and so does gproxy,
			// with the initial values standing until it arrives.
			sf, ok := f.(*http2.SettingsFrame)
			if !ok || sf.IsAck() {
				return c.connError(http2.ErrCodeProtocol, errors.New("h2: first frame is not SETTINGS"))
			}
		}
		if err := c.dispatch(f); err != nil {
			return err
		}
	}
}

// readError handles an error from ReadFrame: a stream error resets that
// stream and reading goes on (nil); anything else ends the connection.
func (c *Conn) readError(err error) error {
	var se http2.StreamError
	if errors.As(err, &se) {
		return c.streamProtocolError(se.StreamID, se.Code)
	}
	if errors.Is(err, errFlood) || errors.Is(err, errGlitches) {
		return c.calm(err)
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		return c.connError(http2.ErrCode(ce), err)
	}
	if errors.Is(err, http2.ErrFrameTooLarge) {
		return c.connError(http2.ErrCodeFrameSize, err)
	}
	return err
}

func (c *Conn) dispatch(f http2.Frame) error {
	if len(c.pending) > 0 && !c.keepsPending(f) {
		c.flushPending()
	}
	switch f := f.(type) {
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		return c.onReset(f)
	case *http2.PingFrame:
		return c.onPing(f)
	case *http2.GoAwayFrame:
		c.onGoAway(f)
	case *http2.PushPromiseFrame:
		return c.connError(http2.ErrCodeProtocol, errors.New("h2: unexpected PUSH_PROMISE"))
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return c.streamProtocolError(f.StreamID, http2.ErrCodeProtocol)
		}
	}
	return nil // unknown frame types are ignored
}

// keepsPending reports whether f may be processed while new streams wait
// in c.pending: frames that do not deliver events to a stream's handler.
func (c *Conn) keepsPending(f http2.Frame) bool {
	switch f := f.(type) {
	case *http2.RSTStreamFrame, *http2.SettingsFrame, *http2.PingFrame,
		*http2.WindowUpdateFrame, *http2.PriorityFrame:
		return true
	case *http2.MetaHeadersFrame:
		return f.StreamID > c.lastPeerID // another new stream
	}
	return false
}

// flushPending hands the waiting new streams to HandleStream, in order,
// except those the peer has reset meanwhile.
func (c *Conn) flushPending() {
	for i, p := range c.pending {
		c.pending[i] = pendingStream{}
		c.mu.Lock()
		live := c.streams[p.s.id] == p.s
		c.mu.Unlock()
		if live {
			c.startStream(p.s, p.f)
		}
	}
	c.pending = c.pendBuf[:0]
}

// startStream hands a new stream to the connection's handler.
func (c *Conn) startStream(s *Stream, f *http2.MetaHeadersFrame) {
	for _, hf := range f.Fields {
		c.payload += int64(len(hf.Name) + len(hf.Value))
	}
	// s.h is only read on this goroutine and, for HandleSent, captured
	// under c.mu when data is framed, so it may change here.
	if h := c.h.HandleStream(s, f); h != nil {
		c.mu.Lock()
		s.h = h
		c.mu.Unlock()
	}
}

// overBacklogLocked reports whether the output queued and being written
// is past twice MaxControlBacklog: the peer is not reading what we send
// and frames read before the reader paused (pauseForBacklog) took it
// there, so a frame that needs an answer must not add to it.
func (c *Conn) overBacklogLocked() bool {
	return c.backlogLocked() > 2*c.lim.MaxControlBacklog
}

// backlogLocked is the output queued and being written, in bytes.
func (c *Conn) backlogLocked() int { return len(c.out) + c.inflight }

// pauseForBacklog is called by a Server-role reader before it reads from
// the socket. While more than MaxControlBacklog is unwritten it does not
// read (the peer's frames wait in TCP, costing nothing), until the writer
// brings the backlog back under the bound; after BacklogWait it gives up
// on the peer (GOAWAY ENHANCE_YOUR_CALM, closed at once as the output is
// stuck).
func (c *Conn) pauseForBacklog() error {
	var deadline *time.Timer
	for {
		c.mu.Lock()
		if c.backlogLocked() <= c.lim.MaxControlBacklog || c.closed || !c.writing {
			c.mu.Unlock()
			if deadline != nil {
				deadline.Stop()
			}
			return nil
		}
		ch := make(chan struct{})
		c.drained = ch
		c.mu.Unlock()
		if deadline == nil {
			deadline = time.NewTimer(c.lim.BacklogWait)
		}
		select {
		case <-ch:
		case <-deadline.C:
			return c.calm(errBacklog)
		}
	}
}

// Control replies the kernel holds. A peer that sends SETTINGS or PING
// frames without reading the ACKs first fills its own receive buffer and
// our socket's send buffer, megabytes that pauseForBacklog does not see,
// and meanwhile makes us parse and answer every frame. So once a peer has
// made us answer ctrlCheckBytes of control frames within ctrlCheckWindow
// (a client reads its PING ACKs within a round trip: 3,800 PINGs a second
// needs a LAN and a reader), the reader also counts what the kernel has
// not sent (sockUnsent): past MaxControlBacklog it stops reading, as for
// its own backlog, and after BacklogWait the connection is closed.
const (
	ctrlCheckBytes  = 64 << 10
	ctrlCheckWindow = time.Second
	unsentPoll      = 10 * time.Millisecond
)

// ctrlReply counts n bytes of control replies (reader goroutine).
func (c *Conn) ctrlReply(n int) {
	if c.role != Server {
		return
	}
	c.ctrlOut += n
	if c.ctrlOut < min(ctrlCheckBytes, c.lim.MaxControlBacklog) {
		return
	}
	now := time.Now()
	if now.Sub(c.ctrlSince) < ctrlCheckWindow {
		c.ctrlCheck = true
	}
	c.ctrlOut, c.ctrlSince = 0, now
}

// pauseForUnsent is pauseForBacklog for the kernel's part of the output,
// called by the reader after a burst of control replies (see ctrlReply).
func (c *Conn) pauseForUnsent() error {
	c.ctrlCheck = false
	for waited := time.Duration(0); ; waited += unsentPoll {
		c.mu.Lock()
		pending, closed := c.backlogLocked(), c.closed
		c.mu.Unlock()
		unsent, ok := sockUnsent(c.nc)
		if closed || !ok || unsent+pending <= c.lim.MaxControlBacklog {
			return nil
		}
		if waited >= c.lim.BacklogWait {
			return c.closeStuck(errBacklog)
		}
		time.Sleep(unsentPoll)
	}
}

// signalDrainedLocked wakes a reader paused in pauseForBacklog once the
// backlog is back under the bound or the writer stopped.
func (c *Conn) signalDrainedLocked() {
	if c.drained != nil && (c.backlogLocked() <= c.lim.MaxControlBacklog || !c.writing) {
		close(c.drained)
		c.drained = nil
	}
}

// glitchLocked counts a glitch and reports whether the connection is now
// past MaxGlitches (Server role only: upstream servers are not policed).
func (c *Conn) glitchLocked() bool {
	c.glitches++
	return c.role == Server && c.glitches >= c.lim.MaxGlitches
}

// calm ends the connection with GOAWAY ENHANCE_YOUR_CALM. If output is
// stuck (the peer does not read) the socket is closed at once: waiting to
// flush would keep the connection's memory for send_timeout.
func (c *Conn) calm(err error) error {
	c.mu.Lock()
	stuck := c.inflight > 0 && c.backlogLocked() > c.lim.MaxControlBacklog
	c.mu.Unlock()
	if stuck {
		return c.closeStuck(err)
	}
	// No lingering close for an abusive peer, as in nginx and HAProxy:
	// the GOAWAY goes out and the socket closes at once (shutdown), since
	// reading what the peer still sends is the work it wanted from us.
	c.queueGoAway(http2.ErrCodeEnhanceYourCalm)
	return err
}

// closeStuck closes at once a connection whose peer does not read: a
// GOAWAY would only wait behind what it has not read.
func (c *Conn) closeStuck(err error) error {
	c.mu.Lock()
	c.closed = true
	if c.closeErr == nil {
		c.closeErr = err
	}
	c.mu.Unlock()
	c.closeSocket()
	return err
}

// connError sends GOAWAY with code and ends the connection.
func (c *Conn) connError(code http2.ErrCode, err error) error {
	c.queueGoAway(code)
	c.discardInput()
	return err
}

// queueGoAway queues GOAWAY with code, after which the socket closes
// once the output is written.
func (c *Conn) queueGoAway(code http2.ErrCode) {
	c.mu.Lock()
	if !c.closed {
		c.out = appendGoAway(c.outBuf(), c.lastPeerID, code)
		c.goAwaySent = true
		c.closeWhenDrained = true
		c.kickLocked()
	}
	c.mu.Unlock()
}

// Lingering close, as nginx's lingering_close: closing a socket with unread
// input makes the kernel send RST, and a peer that gets RST may discard the
// GOAWAY we sent just before, never learning why the connection ended. So
// after the last frame we only shut down our side and read (and drop) what
// the peer still sends, for a bounded time and amount, before closing.
const (
	lingerTimeout  = 5 * time.Second // nginx's lingering_timeout
	lingerMaxBytes = 1 << 20
)

// discardInput reads and drops input until the peer closes, an error, the
// linger time or the byte bound. The writer half-closes the socket once the
// GOAWAY is out (closeDrained).
func (c *Conn) discardInput() {
	c.mu.Lock()
	c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	c.mu.Unlock()
	var buf [512]byte
	for n := 0; n < lingerMaxBytes; {
		m, err := c.nc.Read(buf[:])
		if err != nil {
			return
		}
		n += m
	}
}

// closeDrained ends a connection whose output has all been written: it
// half-closes, leaving the reader lingerTimeout to see the peer close, or
// closes outright if the connection cannot half-close.
func (c *Conn) closeDrained() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.mu.Lock()
		c.lingering.Store(true)
		c.deadline = time.Now().Add(lingerTimeout)
		c.nc.SetReadDeadline(c.deadline)
		c.mu.Unlock()
		if c.unparked(false) {
			go c.run() // to linger, parked again under the new deadline
		}
		return
	}
	c.closeSocket()
}

// closeSocket closes the socket; the reader sees it and shuts the
// connection down.
func (c *Conn) closeSocket() error {
	parked := c.unparked(true)
	err := c.nc.Close()
	if parked {
		go c.run()
	}
	return err
}

// streamProtocolError resets one stream for a stream-level protocol error
// and tells its handler.
func (c *Conn) streamProtocolError(id uint32, code http2.ErrCode) error {
	c.mu.Lock()
	if c.overBacklogLocked() {
		c.mu.Unlock()
		return c.calm(errBacklog)
	}
	calm := c.glitchLocked()
	s := c.streams[id]
	if s != nil {
		c.resetLocked(s, code)
	} else if !c.closed {
		if c.role == Server && id > c.lastPeerID {
			c.lastPeerID = id
		}
		c.out = appendRST(c.outBuf(), id, code)
		c.kickLocked()
	}
	c.mu.Unlock()
	if s != nil {
		s.h.HandleReset(s, &StreamError{Code: code})
	}
	if calm {
		return c.calm(errGlitches)
	}
	return nil
}

func (c *Conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			return c.connError(http2.ErrCode(ce), err)
		}
		return c.connError(http2.ErrCodeProtocol, err)
	}
	c.mu.Lock()
	if c.overBacklogLocked() {
		c.mu.Unlock()
		return c.calm(errBacklog)
	}
	if !c.sawSetting && c.role == Client {
		c.peerMaxConc = ^uint32(0) // the initial value: no limit unless set
	}
	var flowErr bool
	var winDelta int64
	f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - int64(c.peerInitWin)
			winDelta += delta
			c.peerInitWin = int32(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					flowErr = true
				}
				if delta > 0 && st.blocked {
					st.blocked = false
					c.enqueueLocked(st)
				}
			}
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame = s.Val
		case http2.SettingMaxConcurrentStreams:
			c.peerMaxConc = s.Val
		case http2.SettingHeaderTableSize:
			c.peerTableSize = s.Val
			if c.role == Client && c.enc != nil {
				c.enc.SetMaxDynamicTableSizeLimit(s.Val)
			}
		}
		return nil
	})
	c.out = appendFrameHeader(c.outBuf(), 0, http2.FrameSettings, http2.FlagSettingsAck, 0)
	c.kickLocked()
	c.ctrlReply(9)
	var opened []*Stream
	if winDelta > 0 {
		for _, st := range c.streams {
			if _, ok := st.h.(WindowHandler); ok {
				opened = append(opened, st)
			}
		}
	}
	c.mu.Unlock()
	for _, st := range opened {
		st.h.(WindowHandler).HandleWindow(st, int(winDelta))
	}
	if flowErr {
		return c.connError(http2.ErrCodeFlowControl, errors.New("h2: SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window"))
	}
	if !c.sawSetting {
		c.sawSetting = true
		if c.ready != nil {
			c.readyOnce.Do(func() { close(c.ready) })
		}
	}
	return nil
}

const maxWindow = 1<<31 - 1

func (c *Conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	if f.StreamID == 0 {
		c.sendWindow += int64(f.Increment)
		if c.sendWindow > maxWindow {
			c.mu.Unlock()
			return c.connError(http2.ErrCodeFlowControl, errors.New("h2: connection window overflow"))
		}
		if len(c.queue) > 0 {
			c.kickLocked()
		}
		c.mu.Unlock()
		return nil
	}
	s := c.streams[f.StreamID]
	if s == nil {
		c.mu.Unlock()
		if c.isIdleStream(f.StreamID) {
			return c.connError(http2.ErrCodeProtocol, errors.New("h2: WINDOW_UPDATE on idle stream"))
		}
		return nil
	}
	s.sendWindow += int64(f.Increment)
	if s.sendWindow > maxWindow {
		c.resetLocked(s, http2.ErrCodeFlowControl)
		c.mu.Unlock()
		s.h.HandleReset(s, &StreamError{Code: http2.ErrCodeFlowControl})
		return nil
	}
	if s.blocked && s.sendWindow > 0 {
		s.blocked = false
		c.enqueueLocked(s)
	}
	h := s.h
	c.mu.Unlock()
	if wh, ok := h.(WindowHandler); ok {
		wh.HandleWindow(s, int(f.Increment))
	}
	return nil
}

// isIdleStream reports whether id names a stream that cannot exist yet.
func (c *Conn) isIdleStream(id uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.role == Server {
		return id%2 == 1 && id > c.lastPeerID
	}
	return id%2 == 1 && id >= c.nextID
}

func (c *Conn) onPing(f *http2.PingFrame) error {
	c.mu.Lock()
	if f.IsAck() {
		c.pingOut = false
	} else if c.overBacklogLocked() {
		c.mu.Unlock()
		return c.calm(errBacklog)
	} else if !c.closed {
		c.out = appendPing(c.outBuf(), true, f.Data)
		c.kickLocked()
		c.ctrlReply(17)
	}
	c.mu.Unlock()
	return nil
}

func (c *Conn) onReset(f *http2.RSTStreamFrame) error {
	c.mu.Lock()
	s := c.streams[f.StreamID]
	if s == nil {
		c.mu.Unlock()
		if c.isIdleStream(f.StreamID) {
			return c.connError(http2.ErrCodeProtocol, errors.New("h2: RST_STREAM on idle stream"))
		}
		return nil
	}
	// A stream reset before its response ended made us work for nothing
	// (rapid reset, CVE-2023-44487, when repeated).
	calm := !s.sendDone && c.glitchLocked()
	s.sendDone, s.recvDone = true, true
	c.dropQueuedLocked(s)
	c.removeLocked(s)
	c.mu.Unlock()
	s.h.HandleReset(s, &StreamError{Code: f.ErrCode, Remote: true})
	if calm {
		return c.calm(errGlitches)
	}
	return nil
}

func (c *Conn) onGoAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	c.goAwayRecv = true
	var lost []*Stream
	if c.role == Client {
		for id, s := range c.streams {
			if id > f.LastStreamID {
				lost = append(lost, s)
				s.sendDone, s.recvDone = true, true
				c.dropQueuedLocked(s)
				c.removeLocked(s)
			}
		}
	}
	if c.active == 0 {
		c.closeWhenDrained = true
		c.kickLocked()
	}
	c.mu.Unlock()
	for _, s := range lost {
		s.h.HandleReset(s, &StreamError{Code: http2.ErrCodeRefusedStream, Remote: true, Err: errors.New("upstream sent GOAWAY")})
	}
	c.h.HandleGoAway(c)
}

func (c *Conn) onData(f *http2.DataFrame) error {
	n := int64(f.Length) // flow control counts padding too
	c.mu.Lock()
	if n > c.recvWindow {
		c.mu.Unlock()
		return c.connError(http2.ErrCodeFlowControl, errors.New("h2: peer exceeded connection window"))
	}
	c.recvWindow -= n
	c.recvUnacked += n
	if n == 0 && !f.StreamEnded() && c.glitchLocked() {
		c.mu.Unlock()
		return c.calm(errGlitches) // empty DATA: work for no payload
	}
	if c.recvUnacked >= int64(c.lim.ConnWindow)/4 && !c.closed {
		if c.overBacklogLocked() {
			c.mu.Unlock()
			return c.calm(errBacklog)
		}
		c.out = appendWindowUpdate(c.outBuf(), 0, uint32(c.recvUnacked))
		c.recvWindow += c.recvUnacked
		c.recvUnacked = 0
		c.kickLocked()
	}
	s := c.streams[f.StreamID]
	if s == nil || s.recvDone {
		if c.isIdleStreamLocked(f.StreamID) {
			c.mu.Unlock()
			return c.connError(http2.ErrCodeProtocol, errors.New("h2: DATA on idle stream"))
		}
		calm := c.glitchLocked()
		if s != nil {
			c.resetLocked(s, http2.ErrCodeStreamClosed)
		} else if !c.closed {
			c.out = appendRST(c.outBuf(), f.StreamID, http2.ErrCodeStreamClosed)
			c.kickLocked()
		}
		c.mu.Unlock()
		if s != nil {
			s.h.HandleReset(s, &StreamError{Code: http2.ErrCodeStreamClosed})
		}
		if calm {
			return c.calm(errGlitches)
		}
		return nil
	}
	if n > int64(s.recvWindow) {
		c.resetLocked(s, http2.ErrCodeFlowControl)
		c.mu.Unlock()
		s.h.HandleReset(s, &StreamError{Code: http2.ErrCodeFlowControl})
		return nil
	}
	s.recvWindow -= int32(n)
	data := f.Data()
	if pad := int(n) - len(data); pad > 0 {
		s.recvUnacked += int32(pad) // padding is never passed on
	}
	end := f.StreamEnded()
	s.recvBytes += int64(len(data))
	s.recvSeen = true
	c.payload += int64(len(data))
	if s.contentLength >= 0 && (s.recvBytes > s.contentLength || end && s.recvBytes != s.contentLength) {
		c.resetLocked(s, http2.ErrCodeProtocol)
		c.mu.Unlock()
		s.h.HandleReset(s, &StreamError{Code: http2.ErrCodeProtocol, Err: errors.New("content-length mismatch")})
		return nil
	}
	if end {
		s.recvDone = true
		c.maybeRemoveLocked(s)
	}
	c.mu.Unlock()
	s.h.HandleData(s, data, end)
	return nil
}

func (c *Conn) isIdleStreamLocked(id uint32) bool {
	if c.role == Server {
		return id%2 == 1 && id > c.lastPeerID
	}
	return id%2 == 1 && id >= c.nextID
}

func (c *Conn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if f.HasPriority() && f.Priority.StreamDep == id {
		return c.streamProtocolError(id, http2.ErrCodeProtocol)
	}
	c.mu.Lock()
	s := c.streams[id]
	if s == nil {
		if c.role == Client {
			idle := id%2 == 0 || id >= c.nextID
			c.mu.Unlock()
			if idle {
				return c.connError(http2.ErrCodeProtocol, errors.New("h2: HEADERS on a stream we did not open"))
			}
			return nil // a stream we already reset
		}
		if id%2 == 0 || id <= c.lastPeerID {
			c.mu.Unlock()
			return c.connError(http2.ErrCodeStreamClosed, errors.New("h2: HEADERS on a closed stream"))
		}
		c.lastPeerID = id
		if c.goAwaySent && id > c.goAwayLastID {
			c.mu.Unlock()
			return nil // after GOAWAY new streams are ignored
		}
		if c.overBacklogLocked() {
			c.mu.Unlock()
			return c.calm(errBacklog)
		}
		// Beyond http2_max_concurrent_streams, or more new streams in
		// one read than twice that (nginx's "client sent too many
		// streams at once"): REFUSED_STREAM.
		c.newStreams++
		code := http2.ErrCodeNo
		if uint32(c.active) >= c.lim.MaxConcurrentStreams || c.newStreams > 2*int(c.lim.MaxConcurrentStreams) {
			code = http2.ErrCodeRefusedStream
		} else {
			code = checkRequest(f)
		}
		if code != http2.ErrCodeNo {
			c.out = appendRST(c.outBuf(), id, code)
			c.kickLocked()
			calm := c.glitchLocked()
			c.mu.Unlock()
			if calm {
				return c.calm(errGlitches)
			}
			return nil
		}
		if f.Truncated {
			// Over MaxHeaderListSize (large_client_header_buffers): the
			// Framer dropped fields, so the request cannot go on, and a
			// client may send such lists for a few bytes each (an HPACK
			// bomb). As nginx, GOAWAY ENHANCE_YOUR_CALM naming this
			// stream, at the first.
			c.mu.Unlock()
			return c.calm(errHeaderListTooLarge)
		}
		s = c.newStreamLocked(id, discard{})
		s.contentLength = contentLength(f)
		c.started++
		if c.lim.MaxRequests > 0 && c.started >= c.lim.MaxRequests && !c.goAwaySent {
			c.goAwayLocked(http2.ErrCodeNo)
		}
		if f.StreamEnded() {
			s.recvDone = true
		}
		c.mu.Unlock()
		if !c.rd.drained() {
			// More input is already here: it may reset this stream.
			c.pending = append(c.pending, pendingStream{s, f})
			return nil
		}
		c.startStream(s, f)
		return nil
	}
	if s.recvDone {
		c.resetLocked(s, http2.ErrCodeStreamClosed)
		c.mu.Unlock()
		s.h.HandleReset(s, &StreamError{Code: http2.ErrCodeStreamClosed})
		return nil
	}
	if f.Truncated {
		// Response headers or trailers over our MaxHeaderListSize: passing
		// on what is left would change the message.
		c.resetLocked(s, http2.ErrCodeProtocol)
		c.mu.Unlock()
		s.h.HandleReset(s, &StreamError{Code: http2.ErrCodeProtocol, Err: errHeaderListSize})
		return nil
	}
	if c.role == Client && !s.gotResponse {
		// The final response header: its content-length binds the body
		// (RFC 9113 8.1.1), which nginx checks on its upstreams too. A
		// response to HEAD, 204 and 304 has none whatever it says.
		status := f.PseudoValue("status")
		if len(status) == 3 && status[0] != '1' {
			s.gotResponse = true
			if !s.head && status != "204" && status != "304" {
				s.contentLength = contentLength(f)
			}
		}
	}
	if c.role == Server {
		// Request trailers: they must end the stream and carry no
		// pseudo-headers.
		if !f.StreamEnded() || f.PseudoValue("method") != "" || f.PseudoValue("path") != "" {
			c.resetLocked(s, http2.ErrCodeProtocol)
			c.mu.Unlock()
			s.h.HandleReset(s, &StreamError{Code: http2.ErrCodeProtocol})
			return nil
		}
	}
	if f.StreamEnded() {
		s.recvDone = true
		if s.contentLength >= 0 && s.recvBytes != s.contentLength {
			c.resetLocked(s, http2.ErrCodeProtocol)
			c.mu.Unlock()
			s.h.HandleReset(s, &StreamError{Code: http2.ErrCodeProtocol, Err: errors.New("content-length mismatch")})
			return nil
		}
		c.maybeRemoveLocked(s)
	}
	c.mu.Unlock()
	s.h.HandleHeaders(s, f)
	return nil
}

var errHeaderListSize = errors.New("h2: header list larger than SETTINGS_MAX_HEADER_LIST_SIZE")

// checkRequest applies RFC 9113 8.3.1 and 8.2.2 to request headers.
func checkRequest(f *http2.MetaHeadersFrame) http2.ErrCode {
	method := f.PseudoValue("method")
	if method == "" {
		return http2.ErrCodeProtocol
	}
	if method != "CONNECT" && (f.PseudoValue("scheme") == "" || f.PseudoValue("path") == "") {
		return http2.ErrCodeProtocol
	}
	if f.PseudoValue("status") != "" {
		return http2.ErrCodeProtocol
	}
	for _, hf := range f.RegularFields() {
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return http2.ErrCodeProtocol
		case "te":
			if hf.Value != "trailers" {
				return http2.ErrCodeProtocol
			}
		}
	}
	return http2.ErrCodeNo
}

// contentLength returns the declared content-length, or -1.
func contentLength(f *http2.MetaHeadersFrame) int64 {
	for _, hf := range f.RegularFields() {
		if hf.Name == "content-length" {
			var n int64
			if hf.Value == "" {
				return -1
			}
			for i := 0; i < len(hf.Value); i++ {
				d := hf.Value[i]
				if d < '0' || d > '9' || n > 1<<50 {
					return -1
				}
				n = n*10 + int64(d-'0')
			}
			return n
		}
	}
	return -1
}

// discard is the handler of streams answered inside HandleStream.
type discard struct{}

func (discard) HandleHeaders(*Stream, *http2.MetaHeadersFrame) {}
func (discard) HandleData(s *Stream, p []byte, _ bool)         { s.Credit(len(p)) }
func (discard) HandleReset(*Stream, error)                     {}
func (discard) HandleSent(*Stream, int)                        {}

// OpenStream opens a stream (Client role) by sending its HEADERS.
func (c *Conn) OpenStream(fields []hpack.HeaderField, end bool, h StreamHandler) (*Stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, ErrClosed
	case c.goAwayRecv || c.goAwaySent || c.nextID > maxWindow:
		return nil, ErrGoingAway
	case uint32(c.active) >= c.peerMaxConc:
		return nil, ErrStreamLimit
	}
	s := c.newStreamLocked(c.nextID, h)
	for _, f := range fields {
		if f.Name == ":method" {
			s.head = f.Value == "HEAD"
			break
		}
	}
	c.nextID += 2
	c.started++
	if c.lim.MaxRequests > 0 && c.started >= c.lim.MaxRequests {
		c.goAwaySent = true // no new streams; close when drained
	}
	c.writeHeadersLocked(s.id, fields, end)
	if end {
		s.sendDone = true
	}
	c.kickLocked()
	return s, nil
}

// CanOpen reports whether OpenStream would likely succeed now.
func (c *Conn) CanOpen() bool {
	c.mu.Lock()
	ok := !c.closed && !c.goAwayRecv && !c.goAwaySent && uint32(c.active) < c.peerMaxConc && c.nextID < maxWindow
	c.mu.Unlock()
	return ok
}

// IdleSince reports when the connection last became idle (no open
// stream), and whether it is idle now.
func (c *Conn) IdleSince() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idleSince, c.active == 0 && !c.closed
}

// ActiveStreams returns the number of open streams.
func (c *Conn) ActiveStreams() int {
	c.mu.Lock()
	n := c.active
	c.mu.Unlock()
	return n
}

func (c *Conn) newStreamLocked(id uint32, h StreamHandler) *Stream {
	s := &Stream{
		c:             c,
		id:            id,
		h:             h,
		sendWindow:    int64(c.peerInitWin),
		recvWindow:    c.lim.StreamWindow,
		contentLength: -1,
	}
	if c.streams == nil {
		c.streams = make(map[uint32]*Stream)
	}
	c.streams[id] = s
	c.active++
	return s
}

// maybeRemoveLocked forgets s once both directions are done. A stream
// that ends normally takes back one glitch.
func (c *Conn) maybeRemoveLocked(s *Stream) {
	if s.sendDone && s.recvDone {
		if c.glitches > 0 && c.streams[s.id] == s {
			c.glitches--
		}
		c.removeLocked(s)
	}
}

func (c *Conn) removeLocked(s *Stream) {
	if c.streams[s.id] != s {
		return
	}
	delete(c.streams, s.id)
	c.active--
	s.pend = nil
	if c.active == 0 {
		c.idleSince = time.Now()
		if c.lim.CloseIdle && c.role == Client {
			c.goAwaySent = true // open no more streams on it
		}
		if c.goAwaySent || c.goAwayRecv {
			c.closeWhenDrained = true
			c.kickLocked()
		} else if c.role == Server {
			c.graceLocked()
		}
	}
}

// GoAway starts a graceful close (Server role: GOAWAY naming the last
// stream we process; Client role: open no more streams). The connection
// closes once its streams finish.
func (c *Conn) GoAway() {
	c.mu.Lock()
	if !c.closed && !c.goAwaySent {
		c.goAwayLocked(http2.ErrCodeNo)
	}
	c.mu.Unlock()
}

func (c *Conn) goAwayLocked(code http2.ErrCode) {
	c.goAwaySent = true
	if c.role == Server {
		c.goAwayLastID = c.lastPeerID
		c.out = appendGoAway(c.outBuf(), c.lastPeerID, code)
	}
	if c.active == 0 {
		c.closeWhenDrained = true
	}
	c.kickLocked()
}

// Close closes the connection at once; open streams get HandleReset.
func (c *Conn) Close() error {
	return c.closeSocket()
}

// shutdown runs when the reader stops: every stream is reset, then the
// handler hears of the close.
func (c *Conn) shutdown(err error) {
	c.mu.Lock()
	c.closed = true
	if c.closeErr == nil {
		c.closeErr = err
	}
	streams := make([]*Stream, 0, len(c.streams))
	for _, s := range c.streams {
		streams = append(streams, s)
		s.sendDone, s.recvDone = true, true
		s.pend = nil
	}
	clear(c.streams)
	c.active = 0
	c.queue = nil
	writing := c.writing
	c.mu.Unlock()
	if !writing {
		c.nc.Close()
	} else {
		// The writer closes the socket when it sees closed.
		c.flushAndWait(100 * time.Millisecond)
		c.nc.Close()
	}
	serr := &StreamError{Code: http2.ErrCodeCancel, Remote: true, Conn: true, Err: err}
	if c.role == Client && !c.isReady() {
		// The server closed before its preface (SETTINGS): it took no
		// stream, as with a failed connect, so they may go elsewhere.
		serr.Code = http2.ErrCodeRefusedStream
	}
	for _, s := range streams {
		s.h.HandleReset(s, serr)
	}
	c.readyOnce.Do(func() {
		if c.ready != nil {
			close(c.ready)
		}
	})
	c.h.HandleClose(c, err)
}

// Established reports whether the peer's first SETTINGS arrived: the
// connection worked, whatever ended it since.
func (c *Conn) Established() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sawSetting
}

// Err returns the error that closed the connection, or nil while open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		return nil
	}
	if c.closeErr == nil {
		return ErrClosed
	}
	return c.closeErr
}

// readNet reads from the socket. It turns read deadlines into
// keepalive_timeout and liveness PINGs without resetting a deadline per
// frame: the deadline fires periodically and onReadTimeout decides.
// A read with mayIdle set returns errGoIdle if a deadline finds the
// connection idle (see idleGrace).
func (c *Conn) readNet(p []byte, mayIdle bool) (int, error) {
	if c.role == Server {
		if err := c.pauseForBacklog(); err != nil {
			return 0, err
		}
		if c.ctrlCheck {
			if err := c.pauseForUnsent(); err != nil {
				return 0, err
			}
		}
	}
	for {
		n, err := c.nc.Read(p)
		if n > 0 || err == nil {
			return n, err
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return n, err
		}
		if !c.onReadTimeout() {
			return n, err
		}
		if mayIdle && c.atIdleBoundary() {
			return 0, errGoIdle
		}
	}
}

// onReadTimeout decides, on the reader goroutine, whether a read deadline
// ends the connection; otherwise it re-arms the deadline and reading goes on.
func (c *Conn) onReadTimeout() bool {
	now := time.Now()
	c.mu.Lock()
	idle := c.active == 0
	idleFor := now.Sub(c.idleSince)
	if c.closed || c.lingering.Load() || idle && c.lim.IdleTimeout > 0 && idleFor >= c.lim.IdleTimeout {
		c.mu.Unlock()
		return false
	}
	if t := c.lim.HeaderTimeout; t > 0 && c.role == Server && now.Sub(c.headerTick) >= t {
		if c.midFrame && c.frames == c.tickFrames {
			c.mu.Unlock()
			return false // client_header_timeout: a frame started and did not finish
		}
		c.tickFrames, c.headerTick = c.frames, now
	}
	var expired []*Stream
	if t := c.lim.BodyTimeout; t > 0 && now.Sub(c.bodyTick) >= t {
		expired = c.bodyTickLocked()
		c.bodyTick = now
	}
	if c.lim.PingInterval > 0 {
		// Liveness goes by time, not by read timeouts: the deadline also
		// fires early (idleGrace after each idle moment), and counting
		// those as intervals closed live connections whose PING answer was
		// a few milliseconds late. heardAt lags the last frame by at most
		// one deadline, which the bound below allows.
		if c.gotFrame {
			c.heardAt, c.pingOut = now, false
		}
		switch {
		case c.pingOut && now.Sub(c.pingAt) >= c.pingTimeout():
			c.mu.Unlock()
			return false // the peer did not answer our PING
		case !c.pingOut && c.active > 0 && now.Sub(c.heardAt) >= c.lim.PingInterval:
			c.pingOut, c.pingAt = true, now
			c.out = appendPing(c.outBuf(), false, [8]byte{'g', 'p', 'r', 'o', 'x', 'y'})
			c.kickLocked()
		}
	}
	c.gotFrame = false
	c.mu.Unlock()
	for _, s := range expired {
		s.h.HandleReset(s, &StreamError{Code: http2.ErrCodeCancel, Err: errBodyTimeout})
	}
	c.armReadDeadline(now)
	return true
}

var errBodyTimeout = errors.New("client timed out sending the request body (client_body_timeout)")

// bodyTickLocked applies BodyTimeout at a read-deadline tick: a stream
// still receiving that got no DATA since the previous tick is reset.
func (c *Conn) bodyTickLocked() []*Stream {
	if c.role != Server {
		return nil
	}
	var expired []*Stream
	for _, s := range c.streams {
		if !s.recvDone && !s.recvSeen && s.ticked {
			expired = append(expired, s)
		}
		s.recvSeen, s.ticked = false, true
	}
	for _, s := range expired {
		c.resetLocked(s, http2.ErrCodeCancel)
	}
	return expired
}

// pingTimeout is how long our liveness PING may go unanswered.
func (c *Conn) pingTimeout() time.Duration {
	if c.lim.PingTimeout > 0 {
		return c.lim.PingTimeout
	}
	return c.lim.PingInterval
}

func (c *Conn) armReadDeadline(now time.Time) {
	d := c.lim.IdleTimeout
	for _, t := range [...]time.Duration{c.lim.PingInterval, c.lim.HeaderTimeout, c.lim.BodyTimeout} {
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lingering.Load() {
		return // closeDrained set the deadline
	}
	if d == 0 {
		if !c.deadline.IsZero() { // a grace deadline (graceLocked)
			c.deadline = time.Time{}
			c.nc.SetReadDeadline(c.deadline)
		}
		return
	}
	if c.active == 0 && c.lim.IdleTimeout > 0 {
		if rest := c.lim.IdleTimeout - now.Sub(c.idleSince); rest > 0 && rest < d {
			d = rest
		}
	}
	if c.pingOut {
		if rest := c.pingTimeout() - now.Sub(c.pingAt); rest < d {
			d = max(rest, time.Millisecond)
		}
	}
	c.deadline = now.Add(d)
	c.nc.SetReadDeadline(c.deadline)
}
