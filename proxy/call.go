package proxy

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/proxy/route"
	"github.com/gproxy/gproxy/upstream"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// call bridges one client stream (cs) and the upstream stream (us) it is
// proxied to. It has no goroutine: the client connection's reader delivers
// request events, the upstream connection's reader delivers response
// events, a timer enforces grpc-timeout and grpc_read_timeout. Both
// streams' events run the same small state machine under mu.
//
// Flow control: request DATA is handed to us.WriteData, which frames what
// the upstream's windows allow and queues the rest; when bytes are framed
// HandleSent returns that much window to the client (cs.Credit). The
// response direction is symmetric. So each direction buffers at most the
// stream window we advertised to its sender.
type call struct {
	cs    *h2.Stream
	us    atomic.Pointer[h2.Stream] // nil until the upstream stream opens
	group *upstream.Group
	peer  *upstream.Peer
	loc   *route.Location
	start time.Time

	readTimeout time.Duration
	lastUp      atomic.Int64 // unix nanos of the last upstream activity

	mu          sync.Mutex
	fields      []hpack.HeaderField // request headers for upstream, until opened
	pend        []byte              // request DATA received before us opened
	reqEnd      bool                // client finished its request
	respStarted bool                // response headers were sent to the client
	done        bool                // outcome reported; events are ignored
	deadline    time.Time           // from grpc-timeout; zero if none
	timer       *time.Timer
	msgs        msgTracker
	reqBytes    int64
	respBytes   int64
	maxBody     int64 // client_max_body_size when enforced, else 0
	grpcStatus  int
}

// begin opens the upstream stream (or arranges for it to open when a
// connection is ready) and starts the timer. Called from HandleStream.
func (c *call) begin(connectTimeout time.Duration) {
	c.lastUp.Store(c.start.UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armTimerLocked()
	c.openLocked(connectTimeout)
}

// openLocked tries to open the upstream stream through the peer's pool.
func (c *call) openLocked(connectTimeout time.Duration) {
	end := c.reqEnd && len(c.pend) == 0
	s := c.peer.Pool.Open(c.fields, end, c, connectTimeout, func(conn *h2.Conn, err error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.done {
			return
		}
		if err != nil {
			code := codeUnavailable
			var de *upstream.DialError
			if errors.As(err, &de) && de.Timeout {
				code = codeDeadlineExceeded
			}
			c.failLocked(code, "upstream "+strconv.Quote(c.group.Name)+": "+err.Error(), err)
			return
		}
		end := c.reqEnd && len(c.pend) == 0
		s, oerr := conn.OpenStream(c.fields, end, c)
		if oerr != nil {
			c.openLocked(connectTimeout) // that connection filled up: try again
			return
		}
		c.attachLocked(s)
	})
	if s != nil {
		c.attachLocked(s)
	}
}

// attachLocked records the opened upstream stream and sends the request
// DATA that arrived meanwhile.
func (c *call) attachLocked(s *h2.Stream) {
	c.fields = nil
	c.us.Store(s)
	if len(c.pend) > 0 {
		p := c.pend
		c.pend = nil
		s.WriteData(p, c.reqEnd)
	}
}

// HandleHeaders implements h2.StreamHandler.
func (c *call) HandleHeaders(s *h2.Stream, f *http2.MetaHeadersFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return
	}
	if s == c.cs {
		// Request trailers: rare in gRPC; forward them if we can.
		c.reqEnd = true
		if us := c.us.Load(); us != nil {
			us.WriteHeaders(f.RegularFields(), true)
		}
		return
	}
	c.touch()
	end := f.StreamEnded()
	if !c.respStarted {
		st := f.PseudoValue("status")
		if len(st) == 3 && st[0] == '1' && !end {
			return // 1xx: informational, not forwarded
		}
		c.respStarted = true
	}
	if end {
		c.grpcStatus = parseStatus(headerValue(f.Fields, "grpc-status"))
	}
	c.cs.WriteHeaders(clientResponse(f.Fields, c.loc.HideResponse), end)
	if end {
		c.finishLocked(nil, false)
	}
}

// HandleData implements h2.StreamHandler.
func (c *call) HandleData(s *h2.Stream, p []byte, end bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		s.Credit(len(p))
		return
	}
	if s == c.cs {
		c.reqBytes += int64(len(p))
		if c.maxBody > 0 && c.reqBytes > c.maxBody {
			s.Credit(len(p))
			c.failLocked(codeResourceExhausted, "client intended to send too large body: "+
				strconv.FormatInt(c.reqBytes, 10)+" bytes", errBodyTooLarge)
			return
		}
		c.reqEnd = end
		us := c.us.Load()
		if us == nil {
			c.pend = append(c.pend, p...)
			return
		}
		c.touch()
		us.WriteData(p, end)
		return
	}
	c.touch()
	c.respBytes += int64(len(p))
	c.msgs.feed(p)
	c.cs.WriteData(p, end)
	if end {
		c.finishLocked(nil, false)
	}
}

var errBodyTooLarge = errors.New("request body too large")

// HandleReset implements h2.StreamHandler.
func (c *call) HandleReset(s *h2.Stream, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return
	}
	if s == c.cs {
		// The client went away or cancelled: cancel upstream too.
		if us := c.us.Load(); us != nil {
			us.Reset(http2.ErrCodeCancel)
		}
		c.finishLocked(err, true)
		return
	}
	msg := "upstream " + strconv.Quote(c.group.Name) + " (" + c.peer.Addr + ") "
	var se *h2.StreamError
	switch {
	case errors.As(err, &se) && se.Conn:
		msg += "connection closed"
		if se.Err != nil && !errors.Is(se.Err, errEOF) {
			msg += ": " + se.Err.Error()
		}
	case errors.As(err, &se) && se.Err != nil:
		msg += se.Err.Error()
	case errors.As(err, &se):
		msg += "reset stream: " + se.Code.String()
	default:
		msg += err.Error()
	}
	c.failLocked(codeUnavailable, msg, err)
}

var errEOF = errors.New("EOF")

// HandleSent implements h2.StreamHandler: n bytes written on s may now be
// credited to the stream they came from. It takes no lock (it may run
// inside WriteData calls made under c.mu).
func (c *call) HandleSent(s *h2.Stream, n int) {
	if s == c.cs {
		if us := c.us.Load(); us != nil {
			us.Credit(n)
		}
		return
	}
	c.touch()
	c.cs.Credit(n)
}

func (c *call) touch() {
	if c.readTimeout > 0 {
		c.lastUp.Store(time.Now().UnixNano())
	}
}

// failLocked ends the call with a gRPC status made by the proxy: as a
// trailers-only response if nothing was sent yet, as trailers if the
// response stopped between messages, else (a message was cut) by
// resetting the client stream, as Envoy does.
func (c *call) failLocked(code int, msg string, cause error) {
	if c.done {
		return
	}
	switch {
	case !c.respStarted:
		c.respStarted = true
		c.cs.WriteHeaders(trailersOnly(code, msg), true)
	case c.msgs.atBoundary():
		if c.cs.WriteHeaders(statusTrailers(code, msg), true) != nil {
			c.cs.Reset(http2.ErrCodeInternal)
		}
	default:
		c.cs.Reset(http2.ErrCodeInternal)
	}
	c.grpcStatus = code
	if us := c.us.Load(); us != nil {
		us.Reset(http2.ErrCodeCancel)
	}
	if cause == nil {
		cause = errors.New(msg)
	}
	c.finishLocked(cause, false)
}

// finishLocked reports the outcome once and releases the call's timer.
// A response that completed before the client finished its request asks
// the client to stop sending (RST_STREAM NO_ERROR after our END_STREAM).
func (c *call) finishLocked(err error, reset bool) {
	c.done = true
	if c.timer != nil {
		c.timer.Stop()
	}
	if !c.reqEnd && !reset {
		c.cs.ResetAfterEnd(http2.ErrCodeNo)
	}
	if us := c.us.Load(); us != nil && !reset && err == nil {
		us.Reset(http2.ErrCodeCancel) // no-op when it ended normally both ways
	}
	c.pend = nil
	c.peer.Done(upstream.Outcome{
		GRPCStatus:    c.grpcStatus,
		Reset:         reset,
		Err:           err,
		BytesSent:     c.reqBytes,
		BytesReceived: c.respBytes,
		Duration:      time.Since(c.start),
	})
}

// armTimerLocked schedules the next check of grpc-timeout and
// grpc_read_timeout.
func (c *call) armTimerLocked() {
	var next time.Time
	if c.readTimeout > 0 {
		next = time.Unix(0, c.lastUp.Load()).Add(c.readTimeout)
	}
	if !c.deadline.IsZero() && (next.IsZero() || c.deadline.Before(next)) {
		next = c.deadline
	}
	if next.IsZero() {
		return
	}
	d := time.Until(next)
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.onTimer)
	} else {
		c.timer.Reset(d)
	}
}

func (c *call) onTimer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return
	}
	now := time.Now()
	switch {
	case !c.deadline.IsZero() && !now.Before(c.deadline):
		c.failLocked(codeDeadlineExceeded, "deadline exceeded (grpc-timeout) while waiting for upstream "+
			strconv.Quote(c.group.Name), errDeadline)
	case c.readTimeout > 0 && now.Sub(time.Unix(0, c.lastUp.Load())) >= c.readTimeout:
		c.failLocked(codeDeadlineExceeded, "upstream "+strconv.Quote(c.group.Name)+" ("+c.peer.Addr+
			") timed out (grpc_read_timeout "+c.readTimeout.String()+")", errReadTimeout)
	default:
		c.armTimerLocked()
	}
}

var (
	errDeadline    = errors.New("grpc-timeout expired")
	errReadTimeout = errors.New("grpc_read_timeout expired")
)

func headerValue(fields []hpack.HeaderField, name string) string {
	for _, f := range fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}
