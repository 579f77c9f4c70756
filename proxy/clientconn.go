package proxy

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/access"
	"github.com/gproxy/gproxy/proxy/accesslog"
	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/proxy/route"
	"github.com/gproxy/gproxy/upstream"
	"go.uber.org/zap"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// clientConn is one HTTP/2 client connection: it routes each new stream
// and starts its call. Its methods run on the connection's reader.
type clientConn struct {
	srv      *Server
	ln       *listener
	h2       *h2.Conn
	id       uint64
	remote   net.Addr
	local    net.Addr
	start    time.Time // when the connection was accepted (keepalive_time)
	requests int
	tls      *route.TLS     // nil on cleartext
	sc       *streamScratch // HandleStream's, borrowed for its duration
	draining bool           // drainIdle sent GOAWAY (guarded by srv.mu)
	proto    string         // the client's protocol when not HTTP/2.0: an HTTP/1.x request bridge.go carries
}

// streamScratch is what HandleStream works in: through the route and
// picker interfaces locals would escape, an allocation per stream. It is
// pooled rather than kept per connection, so that an idle connection
// holds none of it (nor the header fields it points to).
type streamScratch struct {
	req  route.Request
	ups  [1]route.UpstreamAttempt
	key  []byte // the `hash` key of a stream
	info upstream.StreamInfo
}

var scratchPool = sync.Pool{New: func() any { return new(streamScratch) }}

// putScratch clears the connection's scratch and returns it to the pool.
func (c *clientConn) putScratch() {
	sc := c.sc
	c.sc = nil
	*sc = streamScratch{key: sc.key[:0]}
	scratchPool.Put(sc)
}

// clientLimits maps a server's settings to codec limits, nginx's names to
// ours: http2_max_concurrent_streams, http2_chunk_size,
// large_client_header_buffers, keepalive_timeout, keepalive_requests.
// nginx takes them from the listener's default server, as here, since the
// virtual server is not known when the connection starts.
func clientLimits(st *config.Settings) h2.Limits {
	l := h2.DefaultLimits()
	if st.HTTP2MaxConcurrentStreams > 0 {
		l.MaxConcurrentStreams = uint32(st.HTTP2MaxConcurrentStreams)
	}
	if st.HTTP2ChunkSize > 0 {
		l.ChunkSize = st.HTTP2ChunkSize
	}
	if b := st.LargeClientHeaderBuffers; b.Number > 0 && b.Size > 0 {
		l.MaxHeaderListSize = uint32(b.Number * b.Size)
	}
	l.IdleTimeout = st.KeepaliveTimeout
	l.WriteTimeout = st.SendTimeout
	if st.HTTP2BodyPrereadSize > 0 {
		l.StreamWindow = int32(st.HTTP2BodyPrereadSize)
	}
	l.HeaderTimeout = st.ClientHeaderTimeout
	l.BodyTimeout = st.ClientBodyTimeout
	l.MaxRequests = st.KeepaliveRequests
	return l
}

func (c *clientConn) goAway() { c.h2.GoAway() }

// protocol is $server_protocol of the connection's requests.
func (c *clientConn) protocol() string {
	if c.proto != "" {
		return c.proto
	}
	return "HTTP/2.0"
}
func (c *clientConn) close() { c.h2.Close() }

// HandleStream implements h2.ConnHandler: route the stream, answer it
// (return, errors) or start proxying it.
func (c *clientConn) HandleStream(s *h2.Stream, f *http2.MetaHeadersFrame) h2.StreamHandler {
	rc := c.srv.cur.Load()
	now := time.Now()
	c.sc = scratchPool.Get().(*streamScratch)
	defer c.putScratch()
	c.requests++
	c.srv.stats.requests.Add(1)
	c.ln.stats.streams.Add(1)
	r := &c.sc.req
	*r = route.Request{
		Method:       f.PseudoValue("method"),
		Scheme:       "http",
		Authority:    f.PseudoValue("authority"),
		Path:         f.PseudoValue("path"),
		Headers:      f.RegularFields(),
		RemoteAddr:   c.remote,
		LocalAddr:    c.local,
		Proto:        c.protocol(),
		ConnID:       c.id,
		ConnRequests: c.requests,
		Start:        now,
		TLS:          c.tls,
	}
	if c.tls != nil {
		r.Scheme = "https"
	}
	lst := rc.listeners[c.ln.key]
	if lst == nil && c.ln.last.Load() != nil {
		// A reload removed the listener: this connection has had GOAWAY
		// and finishes on the configuration it was accepted under.
		rc = c.ln.last.Load()
		lst = rc.listeners[c.ln.key]
	}
	if lst == nil {
		respond(s, &route.Action{Code: http.StatusMisdirectedRequest}, nil, r.Method)
		return nil
	}
	c.checkKeepaliveTime(lst, now)
	srv, loc, act := rc.table.Route(lst, r)
	if srv != nil {
		access.RealIP(r, &srv.Settings.Access.RealIP) // nginx's post-read phase
	}
	fc := &filterCtx{st: routeSettings(srv, loc, r), tbl: rc.table, r: r}
	if misdirected(lst, srv, r) {
		ar := misdirectedResult()
		fields, body := refuseStream(s, rc, fc, r, ar, f.StreamEnded())
		if lg := rc.loggerFor(srv, loc); lg != nil {
			c.logRefused(lg, f, ar, fields, body)
		}
		return nil
	}
	if msg := rc.refusal(srv, c.tls); msg != "" {
		act = refuseAction(msg, r)
		if act.Code == 0 {
			fields := trailersOnly(codeUnauthenticated, msg)
			s.WriteHeaders(fields, true)
			s.ResetAfterEnd(http2.ErrCodeNo)
			if lg := rc.loggerFor(srv, loc); lg != nil {
				c.logAnswer(lg, f, &route.Action{Code: http.StatusOK}, fields, 0)
			}
			return nil
		}
	}
	if act != nil {
		act, fc = rc.errorPage(act, fc)
		fields, body := respond(s, act, fc, r.Method)
		if lg := rc.loggerFor(srv, loc); lg != nil {
			c.logAnswer(lg, f, act, fields, body)
		}
		return nil
	}
	lr := rc.locs[loc.Config]
	var ar access.Result
	if lr.access != nil {
		if ar = lr.access.Run(r); ar.Status != 0 {
			ar.Held.Release()
			fields, body := refuseStream(s, rc, fc, r, &ar, f.StreamEnded())
			if lr.log != nil {
				c.logRefused(lr.log, f, &ar, fields, body)
			}
			return nil
		}
	}
	if m := loc.Config.Monitor; m != nil {
		ar.Held.Release()
		c.srv.serveMonitorH2(s, m, r.Method, r.Path)
		return nil
	}
	g, scheme := lr.group, lr.scheme
	if gp := r.IfPass; gp != nil || g == nil {
		if gp == nil {
			gp = loc.Config.GRPCPass
		}
		var target, sch string
		var err error
		g, target, sch, err = rc.groupFor(gp, rc.table, r, fc.st)
		scheme = schemeOf(sch)
		if err != nil {
			ar.Held.Release()
			msg := "grpc_pass " + strconv.Quote(target) + ": " + err.Error()
			fields, body, trailers := failAnswer(rc, fc, isGRPC(r), codeUnavailable, msg, http.StatusBadGateway, r.Method)
			writeAnswer(s, fields, body, trailers)
			s.ResetAfterEnd(http2.ErrCodeNo)
			if lr.log != nil {
				c.logNoPeer(lr.log, f, target, fields)
			}
			return nil
		}
	}
	// info is the connection's scratch: through the picker interface a
	// local one would escape, an allocation per stream.
	info := &c.sc.info
	*info = upstream.StreamInfo{Method: r.Method, Path: r.Path, Authority: r.Authority, RemoteAddr: r.RemoteAddr, Start: now}
	if key := g.HashKey(); key != nil {
		c.sc.key = rc.table.AppendExpand(c.sc.key[:0], *key, r)
		info.Key = c.sc.key
	}
	peer, err := g.Pick(info)
	if err != nil {
		ar.Held.Release()
		c.srv.log.Error((&call{group: g, loc: loc, conn: c, server: srv, method: r.Method, path: r.Path,
			host: r.Authority}).errorLine(msgNoLive, actConnecting, ""), zap.Uint64("connection", c.id))
		msg := "upstream " + strconv.Quote(g.Name) + ": " + err.Error()
		fields, body, trailers := failAnswer(rc, fc, isGRPC(r), codeUnavailable, msg, http.StatusBadGateway, r.Method)
		writeAnswer(s, fields, body, trailers)
		s.ResetAfterEnd(http2.ErrCodeNo)
		if lr.log != nil {
			c.logNoPeer(lr.log, f, g.Name, fields)
		}
		return nil
	}
	st := fc.st
	cl := &call{
		cs:          s,
		group:       g,
		peer:        peer,
		loc:         loc,
		start:       now,
		readTimeout: st.GRPC.ReadTimeout,
		grpcStatus:  -1,
		grpc:        isGRPC(r),
		reqEnd:      f.StreamEnded(),
		held:        ar.Held,
		conn:        c,
		server:      srv,
		method:      r.Method,
		path:        r.Path,
		host:        r.Authority,
		mstat:       c.srv.methods.lookup(r.Path),
	}
	if r.ConnAddr != nil {
		cl.realIP = r.RemoteAddr // for ip_hash on a retry and the error log
	}
	if info.Key != nil {
		// Kept for PickNext; the scratch serves the next stream.
		cl.key = append([]byte(nil), info.Key...)
	}
	cl.filter = filterCtx{st: st, tbl: rc.table}
	cl.rc = rc
	if needsRequest(st) {
		// add_header values and error pages are expanded when the
		// response comes, after r (the connection's scratch) is reused.
		rq := *r
		rq.Upstreams = nil // its own list, filled as attempts end
		cl.filter.r = &rq
	}
	if st.ClientMaxBodySizeSet && st.ClientMaxBodySize > 0 {
		cl.maxBody = st.ClientMaxBodySize
	}
	if v := headerValue(r.Headers, "grpc-timeout"); v != "" {
		if d, ok := parseGRPCTimeout(v); ok {
			cl.deadline = now.Add(d)
		}
	}
	cl.fields = upstreamRequest(make([]hpack.HeaderField, 0, len(f.Fields)+2), f.Fields, scheme, upstreamAuthority(g.Name), loc, rc.table, r)
	if lr.log != nil {
		// After upstreamRequest, which may have computed $request_id:
		// the log must show the value sent upstream.
		cl.lg = newCallLog(lr.log, r)
		cl.lg.r.RequestLength = fieldsSize(f.Fields)
	}
	s.SetHandler(cl)
	if len(st.Mirrors) > 0 {
		cl.mirror = newMirrorReq(rc, srv, st, f, r)
		if st.MirrorRequestBody && !cl.reqEnd {
			cl.waitBody(st.GRPC.ConnectTimeout, ar.Delay)
			return cl
		}
	}
	if ar.Delay > 0 {
		cl.beginAfter(st.GRPC.ConnectTimeout, ar.Delay)
		return cl
	}
	cl.begin(st.GRPC.ConnectTimeout)
	return cl
}

// checkKeepaliveTime applies keepalive_time as nginx does on HTTP/2: a
// stream that starts after the connection has lived that long is still
// served, but the connection then sends GOAWAY and closes once its streams
// finish. As for the other connection limits, the listener's default
// server's value applies.
func (c *clientConn) checkKeepaliveTime(lst *route.Listener, now time.Time) {
	if c.start.IsZero() {
		c.start = now
	}
	if d := lst.DefaultServer(); d != nil && d.Settings.KeepaliveTime > 0 && now.Sub(c.start) > d.Settings.KeepaliveTime {
		c.h2.GoAway()
	}
}

// logAnswer writes the access log line of a stream answered by respond,
// from the connection's scratch request.
func (c *clientConn) logAnswer(lg *accesslog.Logger, f *http2.MetaHeadersFrame, a *route.Action,
	fields []hpack.HeaderField, body int) {
	r := &c.sc.req
	r.End = time.Now()
	r.Status = a.Code
	r.ResponseHeaders = fields
	r.BodyBytesSent = int64(body)
	r.BytesSent = fieldsSize(fields) + int64(body)
	r.RequestLength = fieldsSize(f.Fields)
	lg.Log(r)
}

// logRefused writes the access log line of a stream the access phase
// refused: $status is the HTTP status nginx would log (403, 401, 503...),
// and for a gRPC call $grpc_status the status sent.
func (c *clientConn) logRefused(lg *accesslog.Logger, f *http2.MetaHeadersFrame, ar *access.Result,
	fields []hpack.HeaderField, body int) {
	r := &c.sc.req
	r.End = time.Now()
	r.Status = ar.Status
	r.ResponseHeaders = fields
	r.BodyBytesSent = int64(body)
	r.BytesSent = fieldsSize(fields) + int64(body)
	r.RequestLength = fieldsSize(f.Fields)
	if g := headerValue(fields, "grpc-status"); g != "" {
		r.GRPCStatus = g
		r.GRPCMessage = headerValue(fields, "grpc-message")
	}
	lg.Log(r)
}

// logNoPeer writes the access log line of a stream whose group had no
// server to offer: $upstream_addr is the group's name, as in nginx.
func (c *clientConn) logNoPeer(lg *accesslog.Logger, f *http2.MetaHeadersFrame, group string, fields []hpack.HeaderField) {
	r := &c.sc.req
	r.End = time.Now()
	r.Status = http.StatusOK
	r.ResponseHeaders = fields
	r.BytesSent = fieldsSize(fields)
	r.RequestLength = fieldsSize(f.Fields)
	r.GRPCStatus = grpcStatusText[codeUnavailable]
	r.GRPCMessage = headerValue(fields, "grpc-message")
	c.sc.ups[0] = route.UpstreamAttempt{Addr: group, Status: http.StatusBadGateway, ConnectTime: -1}
	r.Upstreams = c.sc.ups[:1]
	lg.Log(r)
	r.Upstreams = nil
}

// HandleGoAway implements h2.ConnHandler.
func (c *clientConn) HandleGoAway(*h2.Conn) {}

// HandleClose implements h2.ConnHandler.
func (c *clientConn) HandleClose(*h2.Conn, error) {}

// respond answers a stream with an HTTP response of the proxy's own:
// `return`, redirects, and nginx's error pages, through the response phase
// (filter.go) with f. 444 resets the stream. It returns the header fields
// and the body length sent.
func respond(s *h2.Stream, a *route.Action, f *filterCtx, method string) (fields []hpack.HeaderField, bodyLen int) {
	if a.Close {
		s.Reset(http2.ErrCodeInternal)
		return nil, 0
	}
	fields, body, trailers := pageFields(a, f, method)
	writeAnswer(s, fields, body, trailers)
	// A request body still coming is read and discarded, as nginx does
	// for `return`, rather than cut off with RST_STREAM: the stream stays
	// half-closed (local) until the client ends it, so its frames are
	// still checked (content-length, flow control) and counted against
	// http2_max_concurrent_streams.
	return fields, len(body)
}

// actionBody is the body nginx sends for an action: the return text, or
// for errors and redirects without text its small HTML page.
func actionBody(a *route.Action) (body, ctype string) {
	if a.Body != "" {
		return a.Body, "text/plain"
	}
	if a.Code < 300 || a.Code == 304 {
		return "", ""
	}
	return builtinPage(a.Code), "text/html"
}
