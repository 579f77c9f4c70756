package proxy

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/accesslog"
	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/proxy/limit"
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
//
// Next upstream (grpc_next_upstream, _tries, _timeout; retry.go): while
// nothing has reached the client, a failed attempt may pass the call to
// another peer, replaying the request headers and up to maxReplay bytes
// of DATA kept meanwhile. Because a client byte may be framed on several
// attempts, the client is credited only for the longest prefix framed on
// any of them. Each failed attempt writes nginx's error log line
// (errlog.go).
//
// Passive health: each attempt reports to its peer whether it failed as
// nginx counts it (Outcome.Failed): errors and timeouts up to the
// response header, and the http_5xx/http_429 codes listed in
// grpc_next_upstream.
//
// Access log: where access_log is on, the call holds a callLog (pooled):
// a copy of the request whose response fields fill in as the stream goes;
// every attempt adds its $upstream_* entry when it ends. The line is
// written once c.mu is released (unlock), never under it. Where
// access_log is off, lg is nil and none of this happens.
type call struct {
	cs    *h2.Stream
	up    atomic.Pointer[upAttempt] // the upstream stream; nil until it opens
	first upAttempt                 // the first attempt's, without allocating
	group *upstream.Group
	peer  *upstream.Peer
	loc   *route.Location
	start time.Time

	readTimeout time.Duration
	lastUp      atomic.Int64 // unix nanos of the last upstream activity
	credited    atomic.Int64 // request bytes credited back to the client

	mu             sync.Mutex
	fields         []hpack.HeaderField // request headers for upstream, until committed
	pend           []byte              // request DATA received before us opened
	reqEnd         bool                // client finished its request
	mstat          *methodCounter      // per-method metrics; nil unless gproxy_metrics methods=on
	respStarted    bool                // response headers were sent to the client
	done           bool                // outcome reported; events are ignored
	released       bool                // the current peer was told how its attempt ended
	deadline       time.Time           // from grpc-timeout; zero if none
	timer          *time.Timer
	msgs           msgTracker
	reqBytes       int64
	respBytes      int64
	maxBody        int64 // client_max_body_size when enforced, else 0
	grpcStatus     int
	connectTimeout time.Duration
	picked         time.Time        // when peer was picked
	headerAt       time.Time        // when the response header came; zero before
	peerFailed     bool             // this attempt failed, as max_fails counts
	tries          int              // attempts so far (peers picked)
	tried          []*upstream.Peer // peers of earlier attempts
	replay         bool             // sent holds every request byte given to us
	sent           []byte           // request DATA given to us, while replay
	sentBuf        *[]byte          // sent's pool entry, if any

	lg *callLog // access log state; nil when access_log is off

	key []byte // the stream's `hash` key, for PickNext

	// The client connection (its address for PickNext and the error log,
	// the proxy's logger and the connection's number for the error log),
	// and the virtual server and request for error log lines (errlog.go).
	conn               *clientConn
	server             *config.Server
	method, path, host string
	realIP             net.Addr    // the client's address realip found; nil if none
	held               limit.Held  // limit_conn counts, released when the call ends
	delay              *time.Timer // limit_req's wait before begin; nil when none
	// filter is the response phase of this call (add_header, add_trailer,
	// error pages); its request is a copy kept only when those need it.
	filter filterCtx
	rc     *running
	status int  // :status of the response sent to the client; 0 before
	grpc   bool // the request is a gRPC call (isGRPC): failures answer with a gRPC status

	mirror   *mirrorReq // mirror subrequests to send when the call begins; nil if none
	bodyWait *bodyWait  // the call begins once the whole body is here; nil if not waiting
}

// callLog is what a call keeps for its access log line. Its fields are
// guarded by the call's mu.
type callLog struct {
	r           route.Request // a copy of the request; response fields filled at the end
	log         *accesslog.Logger
	finished    bool      // r is complete: unlock writes it
	status      int       // HTTP :status sent to the client; 0 before
	upStatus    int       // :status of the current attempt's response; 0 before
	connected   time.Time // when the current attempt's stream opened
	hdrBytes    int64     // response header and trailer bytes sent
	grpcMessage string    // grpc-message sent to the client
}

// callLogs recycles callLogs, and with them the capacity of their
// Upstreams lists.
var callLogs = sync.Pool{New: func() any { return new(callLog) }}

// newCallLog starts the log state of a call: r is the connection's
// scratch request (reused by the next stream), so it is copied.
func newCallLog(lg *accesslog.Logger, r *route.Request) *callLog {
	l := callLogs.Get().(*callLog)
	ups := l.r.Upstreams[:0]
	l.r = *r
	l.r.Upstreams = ups
	l.log = lg
	return l
}

// write writes the line and recycles l.
func (l *callLog) write() {
	l.log.Log(&l.r)
	ups := l.r.Upstreams[:0]
	*l = callLog{}
	if cap(ups) <= 8 {
		l.r.Upstreams = ups
		callLogs.Put(l)
	}
}

// unlock releases c.mu, then writes the access log line of a call that
// finished while it was held.
func (c *call) unlock() {
	lg := c.lg
	if lg != nil && lg.finished {
		c.lg = nil
	} else {
		lg = nil
	}
	c.mu.Unlock()
	if lg != nil {
		lg.write()
	}
}

// upAttempt is one upstream stream of a call and the request bytes framed
// on it so far.
type upAttempt struct {
	s      *h2.Stream
	framed atomic.Int64
	look   atomic.Int64 // client window passed on to s beyond respAllowance
}

// Response flow control. A backend may send a call what the client can
// take, not more: the upstream stream's window is respAllowance (the
// upstream connections' initial stream window) plus the part of the
// client stream's own window passed on to it (Grant), at most
// respLookahead. The client's window is passed on when the upstream
// stream opens (one WINDOW_UPDATE, in the same write as the HEADERS, so
// the backend never waits for it) and each window the client opens later
// is passed on again. Bytes framed to the client come out of that
// lookahead only as far as the client's remaining window falls below it;
// the rest go back to the backend as credit (useLook). So what a
// backend sent and the client has not taken stays below respAllowance +
// min(client window, respLookahead) per stream: respAllowance for a
// client that does not read, whatever windows it advertised, and
// http2_max_concurrent_streams times that per client connection.
const (
	respAllowance = 4 << 10
	respLookahead = 64 << 10
)

// grantLook records up to n more bytes of lookahead and returns how much
// to Grant.
func (a *upAttempt) grantLook(n int64) int64 {
	for {
		old := a.look.Load()
		g := min(n, respLookahead-old)
		if g <= 0 {
			return 0
		}
		if a.look.CompareAndSwap(old, old+g) {
			return g
		}
	}
}

// useLook accounts for n bytes framed to the client, whose stream window
// is wc after them, and returns how many go back to the backend as
// credit. The lookahead never stays above what the client can still
// take: framed bytes that leave it above wc are credited back at once
// (a client with a wide window gets a steady flow, not one lookahead per
// WINDOW_UPDATE of its own), the others are taken out of it.
func (a *upAttempt) useLook(n, wc int64) int64 {
	for {
		old := a.look.Load()
		t := min(n, max(old-max(wc, 0), 0))
		if a.look.CompareAndSwap(old, old-t) {
			return n - t
		}
	}
}

// HandleWindow implements h2.WindowHandler: the client opened its
// stream's window by n; pass it on to the backend.
func (c *call) HandleWindow(s *h2.Stream, n int) {
	if s != c.cs {
		return
	}
	if a := c.up.Load(); a != nil {
		if g := a.grantLook(int64(n)); g > 0 {
			a.s.Grant(int(g))
		}
	}
}

// upstream returns the current upstream stream, nil before it opens.
func (c *call) upstream() *h2.Stream {
	if a := c.up.Load(); a != nil {
		return a.s
	}
	return nil
}

// begin opens the upstream stream (or arranges for it to open when a
// connection is ready) and starts the timer. Called from HandleStream.
func (c *call) begin(connectTimeout time.Duration) {
	c.beginAt(connectTimeout, c.start)
}

// beginAfter begins the call after limit_req's delay d, from a timer:
// no goroutine waits. Request DATA arriving meanwhile waits in pend,
// within the stream window the client was given; a client that gives
// up ends the call at once (HandleReset), stopping the timer.
func (c *call) beginAfter(connectTimeout, d time.Duration) {
	c.mu.Lock()
	defer c.unlock()
	c.picked = c.start // for the outcome of a call cancelled while it waits
	c.delay = time.AfterFunc(d, func() { c.beginAt(connectTimeout, time.Now()) })
}

// beginAt begins the call as if the peer had been picked at picked.
func (c *call) beginAt(connectTimeout time.Duration, picked time.Time) {
	c.mu.Lock()
	defer c.unlock()
	c.beginLocked(connectTimeout, picked)
}

// waitBody makes the call begin only once the client's whole request
// body is here (mirror_request_body), after limit_req's delay d if any.
// Meanwhile the body collects in pend and the client is credited for it,
// up to client_max_body_size (nginx's 1m when not set).
func (c *call) waitBody(connectTimeout, d time.Duration) {
	c.mu.Lock()
	defer c.unlock()
	c.picked = c.start
	c.bodyWait = &bodyWait{connectTimeout: connectTimeout, delay: d}
	if c.maxBody == 0 {
		c.maxBody = defaultMaxBody
	}
}

// bodyWait is a call waiting for its whole request body.
type bodyWait struct {
	connectTimeout, delay time.Duration
}

// bodyDoneLocked begins a call that waited for its body, which is now
// complete.
func (c *call) bodyDoneLocked() {
	w := c.bodyWait
	c.bodyWait = nil
	body := append([]byte{}, c.pend...)
	if r := c.filter.r; r != nil {
		r.RequestBody = body
	}
	if lg := c.lg; lg != nil {
		lg.r.RequestBody = body
	}
	if w.delay > 0 {
		ct := w.connectTimeout
		c.delay = time.AfterFunc(w.delay, func() { c.beginAt(ct, time.Now()) })
		return
	}
	c.beginLocked(w.connectTimeout, time.Now())
}

// beginLocked begins the call: mirrors, then the upstream stream.
func (c *call) beginLocked(connectTimeout time.Duration, picked time.Time) {
	c.lastUp.Store(picked.UnixNano())
	if c.done {
		return // the client gave up while limit_req delayed the call
	}
	if m := c.mirror; m != nil {
		c.mirror = nil
		m.send(append([]byte(nil), c.pend...)) // pend goes upstream too
	}
	c.connectTimeout = connectTimeout
	c.picked = picked
	c.tries = 1
	c.replay = c.mayRetry()
	c.armTimerLocked()
	c.openLocked()
}

// openLocked tries to open the upstream stream through the peer's pool.
func (c *call) openLocked() {
	end := c.reqEnd && len(c.pend) == 0
	// The common case, a pooled connection with room, needs no retry
	// closure: only build one when the pool has to wait for a dial.
	if s := c.peer.Pool.TryOpen(c.fields, end, c); s != nil {
		c.attachLocked(s)
		return
	}
	attempt := c.tries
	s := c.peer.Pool.Open(c.fields, end, c, c.connectTimeout, func(conn *h2.Conn, err error) {
		c.mu.Lock()
		defer c.unlock()
		if c.done || attempt != c.tries {
			return
		}
		if err != nil {
			c.dialFailedLocked(err)
			return
		}
		end := c.reqEnd && len(c.pend) == 0
		s, oerr := conn.OpenStream(c.fields, end, c)
		if oerr != nil {
			if !conn.Established() && conn.Err() != nil {
				// The server closed before its SETTINGS: a failed
				// connect, not a full connection to dial past.
				c.dialFailedLocked(&upstream.DialError{Addr: c.peer.Addr, Err: errClosedBeforeSettings})
				return
			}
			c.openLocked() // that connection filled up: try again
			return
		}
		c.attachLocked(s)
	})
	if s != nil {
		c.attachLocked(s)
	}
}

// errClosedBeforeSettings: the upstream accepted the connection and
// closed it before its preface.
var errClosedBeforeSettings = errors.New("connection closed before the server's SETTINGS")

// dialFailedLocked handles a failed connection to the peer: a failure
// for passive health (unless the pool was closed under us), then the next
// peer or the error.
func (c *call) dialFailedLocked(err error) {
	code, ft := codeUnavailable, "error"
	var de *upstream.DialError
	if errors.As(err, &de) && de.Timeout {
		code, ft = codeDeadlineExceeded, "timeout"
	}
	c.peerFailed = !errors.Is(err, h2.ErrClosed)
	if c.peerFailed {
		c.logAttempt(dialMessage(err))
	}
	if c.retryLocked(ft, false, err) {
		return
	}
	c.failLocked(code, "upstream "+strconv.Quote(c.group.Name)+": "+err.Error(), err)
}

// attachLocked records the opened upstream stream and sends the request
// DATA that arrived meanwhile.
func (c *call) attachLocked(s *h2.Stream) {
	a := &c.first
	if c.tries > 1 {
		a = &upAttempt{}
	}
	a.s = s
	c.up.Store(a)
	if g := a.grantLook(c.cs.SendWindow()); g > 0 {
		s.Grant(int(g))
	}
	if c.lg != nil {
		c.lg.connected = time.Now()
	}
	if !c.replay {
		c.fields = nil
	}
	if len(c.pend) > 0 {
		p := c.pend
		c.pend = nil
		s.WriteData(p, c.reqEnd)
		if c.replay && len(p) <= maxReplay {
			c.sent = p
		} else {
			c.commitLocked()
		}
	}
}

// HandleHeaders implements h2.StreamHandler.
func (c *call) HandleHeaders(s *h2.Stream, f *http2.MetaHeadersFrame) {
	c.mu.Lock()
	defer c.unlock()
	if c.done {
		return
	}
	if s == c.cs {
		// Request trailers: rare in gRPC; forward them if we can. They
		// are not kept for a replay.
		c.reqEnd = true
		if us := c.upstream(); us != nil {
			us.WriteHeaders(f.RegularFields(), true)
			c.commitLocked()
		}
		return
	}
	if s != c.upstream() {
		return // an earlier attempt's stream
	}
	c.touch()
	end := f.StreamEnded()
	if !c.respStarted {
		st := f.PseudoValue("status")
		if len(st) == 3 && st[0] == '1' && !end {
			return // 1xx: informational, not forwarded
		}
		// grpc_next_upstream first, as nginx decides on the next upstream
		// before intercepting errors.
		if ft, failed, unprocessed := c.responseFailure(st, end, f.Fields); ft != "" {
			c.peerFailed = failed
			if c.lg != nil {
				c.lg.upStatus = parseHTTPStatus(st)
			}
			if c.retryLocked(ft, unprocessed, errUpstreamStatus) {
				return
			}
		}
	}
	c.commitLocked()
	fields := clientResponse(f.Fields, c.loc.HideResponse)
	if !c.respStarted {
		st := f.PseudoValue("status")
		if c.interceptLocked(st) {
			return
		}
		c.respStarted = true
		c.headerAt = time.Now()
		c.status = parseHTTPStatus(st)
		if r := c.filter.r; r != nil {
			r.UpstreamHeaders = f.Fields
		}
		if lg := c.lg; lg != nil {
			// A trailers-only response's fields are headers, as nginx
			// reads them: $upstream_trailer_* stay empty.
			lg.r.UpstreamHeaders = f.Fields
		}
		fields = c.filter.headerPhase(append(make([]hpack.HeaderField, 0, len(fields)+4), fields...), c.status)
		if end {
			fields = c.filter.trailerPhase(fields, c.status)
		}
		if lg := c.lg; lg != nil {
			lg.upStatus = parseHTTPStatus(st)
			lg.status = lg.upStatus
			lg.r.ResponseHeaders = fields
		}
	} else if end {
		if r := c.filter.r; r != nil {
			r.UpstreamTrailers = f.Fields
		}
		if c.filter.hasTrailers(c.status) {
			fields = c.filter.trailerPhase(append(make([]hpack.HeaderField, 0, len(fields)+4), fields...), c.status)
		}
		if lg := c.lg; lg != nil {
			lg.r.UpstreamTrailers = f.Fields
			lg.r.ResponseTrailers = fields
		}
	}
	if end {
		c.grpcStatus = parseStatus(headerValue(f.Fields, "grpc-status"))
	}
	if lg := c.lg; lg != nil {
		lg.hdrBytes += fieldsSize(fields)
		if end {
			lg.grpcMessage = headerValue(fields, "grpc-message")
		}
	}
	if end {
		c.releaseLocked(nil, false, time.Now())
	}
	c.cs.WriteHeaders(fields, end)
	if end {
		c.finishLocked(nil, false)
	}
}

// HandleData implements h2.StreamHandler.
func (c *call) HandleData(s *h2.Stream, p []byte, end bool) {
	c.mu.Lock()
	defer c.unlock()
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
		us := c.upstream()
		if us == nil {
			c.pend = append(c.pend, p...)
			if c.bodyWait != nil {
				s.Credit(len(p)) // bounded by maxBody above
				if end {
					c.bodyDoneLocked()
				}
			}
			return
		}
		c.touch()
		us.WriteData(p, end)
		if c.replay {
			c.keepSentLocked(p)
		}
		return
	}
	if s != c.upstream() {
		s.Credit(len(p))
		return // an earlier attempt's stream
	}
	c.touch()
	c.commitLocked()
	c.respBytes += int64(len(p))
	c.msgs.feed(p)
	if end {
		c.releaseLocked(nil, false, time.Now())
	}
	c.cs.WriteData(p, end)
	if end {
		c.finishLocked(nil, false)
	}
}

var errBodyTooLarge = errors.New("request body too large")

// HandleReset implements h2.StreamHandler.
func (c *call) HandleReset(s *h2.Stream, err error) {
	c.mu.Lock()
	defer c.unlock()
	if c.done {
		return
	}
	if s == c.cs {
		// The client went away or cancelled: cancel upstream too.
		if us := c.upstream(); us != nil {
			us.Reset(http2.ErrCodeCancel)
		}
		c.finishLocked(err, true)
		return
	}
	if s != c.upstream() {
		return // an earlier attempt's stream
	}
	if !c.deadline.IsZero() && !time.Now().Before(c.deadline) {
		// The backend gave up on the grpc-timeout we passed on (it
		// resets with CANCEL), before our own timer ran: the call's
		// deadline is what ended it.
		c.failDeadlineLocked()
		return
	}
	msg, ft := streamMessage(err, c.respStarted)
	action := actReading
	if !c.respStarted {
		// Before the response header, any upstream error is a failed
		// attempt (error, timeout or invalid_header for nginx); a refused
		// stream was not processed and may go to the next peer.
		c.peerFailed = true
		action = actReadingHeader
	}
	c.logAttempt(msg, action)
	if !c.respStarted && c.retryLocked(ft, refused(err), err) {
		return
	}
	gmsg := "upstream " + strconv.Quote(c.group.Name) + " (" + c.peer.Addr + ") "
	var se *h2.StreamError
	switch {
	case errors.As(err, &se) && se.Conn:
		gmsg += "connection closed"
		if se.Err != nil && !errors.Is(se.Err, errEOF) {
			gmsg += ": " + se.Err.Error()
		}
	case errors.As(err, &se) && se.Err != nil:
		gmsg += se.Err.Error()
	case errors.As(err, &se):
		gmsg += "reset stream: " + se.Code.String()
	default:
		gmsg += err.Error()
	}
	c.failLocked(codeUnavailable, gmsg, err)
}

var errEOF = errors.New("EOF")

// HandleSent implements h2.StreamHandler: n bytes written on s may now be
// credited to the stream they came from. It takes no lock (it may run
// inside WriteData calls made under c.mu).
func (c *call) HandleSent(s *h2.Stream, n int) {
	if s == c.cs {
		if a := c.up.Load(); a != nil {
			if r := a.useLook(int64(n), s.SendWindow()); r > 0 {
				a.s.Credit(int(r))
			}
		}
		return
	}
	c.touch()
	if a := c.up.Load(); a != nil && a.s == s {
		c.creditClient(a.framed.Add(int64(n)))
		return
	}
	c.creditClient(s.BytesSent()) // an earlier attempt's stream (rare)
}

// creditClient returns window to the client up to the longest prefix of
// the request framed on any attempt: every attempt sends the request from
// its first byte, and each byte is credited once.
func (c *call) creditClient(framed int64) {
	for {
		old := c.credited.Load()
		if framed <= old {
			return
		}
		if c.credited.CompareAndSwap(old, framed) {
			c.cs.Credit(int(framed - old))
			return
		}
	}
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
	if cause == nil {
		cause = errors.New(msg)
	}
	c.grpcStatus = code
	c.releaseLocked(cause, false, time.Now())
	var fields []hpack.HeaderField
	switch {
	case !c.respStarted:
		c.respStarted = true
		var body string
		var trailers []hpack.HeaderField
		fields, body, trailers = failAnswer(c.rc, &c.filter, c.grpc, code, msg, errorCode(code, cause), c.method)
		writeAnswer(c.cs, fields, body, trailers)
		c.respBytes += int64(len(body))
		if lg := c.lg; lg != nil {
			lg.status = parseHTTPStatus(fields[0].Value) // 200, or an error page's own
			lg.r.ResponseHeaders = fields
		}
	case c.msgs.atBoundary():
		fields = statusTrailers(code, msg)
		if c.cs.WriteHeaders(fields, true) != nil {
			c.cs.Reset(http2.ErrCodeInternal)
			fields = nil
		}
	default:
		c.cs.Reset(http2.ErrCodeInternal)
	}
	if lg := c.lg; lg != nil && fields != nil {
		lg.grpcMessage = headerValue(fields, "grpc-message")
		lg.hdrBytes += fieldsSize(fields)
	}
	if us := c.upstream(); us != nil {
		us.Reset(http2.ErrCodeCancel)
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
	if c.delay != nil {
		c.delay.Stop()
	}
	c.held.Release()
	if !c.reqEnd && !reset {
		c.cs.ResetAfterEnd(http2.ErrCodeNo)
	}
	if us := c.upstream(); us != nil && !reset && err == nil {
		us.Reset(http2.ErrCodeCancel) // no-op when it ended normally both ways
	}
	c.pend = nil
	c.commitLocked()
	now := time.Now()
	c.reportLocked(err, reset, now)
	if c.mstat != nil {
		c.mstat.observe(c.grpcStatus, now.Sub(c.start))
	}
	if c.lg != nil {
		c.fillLogLocked(now)
	}
}

// headerTime is the time from the pick to the response header (least_time
// header); 0 when no header came.
func (c *call) headerTime() time.Duration {
	if c.headerAt.IsZero() {
		return 0
	}
	return c.headerAt.Sub(c.picked)
}

// reportLocked tells the current peer how its attempt ended, and adds the
// attempt to the access log record.
func (c *call) reportLocked(err error, reset bool, now time.Time) {
	if !c.released {
		c.releaseLocked(err, reset, now)
	}
	c.released = false
	if lg := c.lg; lg != nil {
		a := route.UpstreamAttempt{Addr: c.peer.Addr, Status: lg.upStatus, ResponseTime: now.Sub(c.picked), ConnectTime: -1}
		if !lg.connected.IsZero() {
			a.ConnectTime = lg.connected.Sub(c.picked)
		}
		if a.Status == 0 && err != nil && !reset {
			a.Status = attemptStatus(err)
		}
		lg.r.Upstreams = append(lg.r.Upstreams, a)
	}
	if r := c.filter.r; r != nil {
		// $upstream_addr and company in an error page or add_header
		r.Upstreams = append(r.Upstreams, route.UpstreamAttempt{Addr: c.peer.Addr, ResponseTime: now.Sub(c.picked), ConnectTime: -1})
	}
}

// releaseLocked tells the current peer how its attempt ended. The final
// answer calls it before its last frame goes to the client, as nginx frees
// a peer before it finalizes the request: a client's next call then finds
// the peer's state (active streams, failures) up to date.
func (c *call) releaseLocked(err error, reset bool, now time.Time) {
	c.released = true
	c.peer.Done(upstream.Outcome{
		GRPCStatus:    c.grpcStatus,
		Reset:         reset,
		Err:           err,
		BytesSent:     c.reqBytes,
		BytesReceived: c.respBytes,
		Duration:      now.Sub(c.picked),
		HeaderTime:    c.headerTime(),
		Failed:        c.peerFailed,
	})
}

// attemptStatus is the $upstream_status nginx logs for an attempt that
// got no response header: 504 when it timed out, 502 otherwise, and none
// (0, "-") when the request itself was refused.
func attemptStatus(err error) int {
	var de *upstream.DialError
	switch {
	case errors.Is(err, errBodyTooLarge):
		return 0
	case errors.As(err, &de) && de.Timeout, errors.Is(err, errReadTimeout), errors.Is(err, errDeadline):
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// fillLogLocked completes the log record of a call that ended at now,
// for unlock to write.
func (c *call) fillLogLocked(now time.Time) {
	lg := c.lg
	r := &lg.r
	r.End = now
	r.Status = lg.status
	if r.Status == 0 {
		// Nothing was answered: the client gave up first (nginx's 499).
		r.Status = statusClientClosed
	}
	r.BodyBytesSent = c.respBytes
	r.BytesSent = lg.hdrBytes + c.respBytes
	r.RequestLength += c.reqBytes
	if c.grpcStatus >= 0 {
		r.GRPCStatus = grpcStatusString(c.grpcStatus)
	}
	r.GRPCMessage = lg.grpcMessage
	lg.finished = true
}

// statusClientClosed is nginx's $status for a request the client closed
// before the response started.
const statusClientClosed = 499

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
	defer c.unlock()
	if c.done {
		return
	}
	now := time.Now()
	switch {
	case !c.deadline.IsZero() && !now.Before(c.deadline):
		c.failDeadlineLocked()
	case c.readTimeout > 0 && now.Sub(time.Unix(0, c.lastUp.Load())) >= c.readTimeout:
		if c.respStarted {
			c.logAttempt(msgTimedOut, actReading)
		} else {
			c.peerFailed = true // timeout reading the response header
			c.logAttempt(msgTimedOut, actReadingHeader)
			if c.retryLocked("timeout", false, errReadTimeout) {
				c.armTimerLocked()
				return
			}
		}
		c.failLocked(codeDeadlineExceeded, "upstream "+strconv.Quote(c.group.Name)+" ("+c.peer.Addr+
			") timed out (grpc_read_timeout "+c.readTimeout.String()+")", errReadTimeout)
	default:
		c.armTimerLocked()
	}
}

// failDeadlineLocked ends a call whose grpc-timeout has expired.
func (c *call) failDeadlineLocked() {
	c.failLocked(codeDeadlineExceeded, "deadline exceeded (grpc-timeout) while waiting for upstream "+
		strconv.Quote(c.group.Name), errDeadline)
}

var (
	errUpstreamStatus = errors.New("upstream response status listed in grpc_next_upstream")
	errDeadline       = errors.New("grpc-timeout expired")
	errReadTimeout    = errors.New("grpc_read_timeout expired")
)

func headerValue(fields []hpack.HeaderField, name string) string {
	for _, f := range fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// interceptLocked answers, for grpc_intercept_errors, an upstream response
// of status 300 or more with the error page configured for its status; it
// reports false (the response passes) when interception is off or no
// page applies.
func (c *call) interceptLocked(status string) bool {
	st := c.filter.st
	code := parseHTTPStatus(status)
	if st == nil || !st.GRPC.InterceptErrors || code < 300 || c.filter.r == nil || len(st.ErrorPages) == 0 {
		return false
	}
	r := c.filter.r
	n := len(r.Upstreams)
	// The page's variables ($upstream_addr, ...) see this attempt too.
	r.Upstreams = append(r.Upstreams, route.UpstreamAttempt{Addr: c.peer.Addr, Status: code, ResponseTime: time.Since(c.picked), ConnectTime: -1})
	p, ok := c.rc.table.ErrorPage(st, code, r)
	if !ok {
		r.Upstreams = r.Upstreams[:n]
		return false
	}
	c.respStarted = true
	fields, _ := respond(c.cs, p.Action, &filterCtx{st: p.Settings, tbl: c.filter.tbl, r: r}, r.Method)
	if lg := c.lg; lg != nil {
		lg.upStatus = code
		lg.status = p.Action.Code
		lg.r.ResponseHeaders = fields
		lg.hdrBytes += fieldsSize(fields)
	}
	if us := c.upstream(); us != nil {
		us.Reset(http2.ErrCodeCancel)
	}
	c.finishLocked(nil, false)
	return true
}
