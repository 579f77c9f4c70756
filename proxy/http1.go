package proxy

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/access"
	"github.com/gproxy/gproxy/proxy/accesslog"
	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http2/hpack"
)

// http1Handler answers HTTP/1.x requests: `return` locations (probes,
// redirects), error pages and monitoring here; grpc_pass locations through
// the HTTP/2 engine (bridge.go), except gRPC calls, which get a 400 saying
// gRPC needs HTTP/2. It is not the hot path.
type http1Handler struct {
	srv *Server
	ln  *listener
}

// grpcNeedsHTTP2 is the body sent to gRPC calls made over HTTP/1.x.
const grpcNeedsHTTP2 = "gRPC requires HTTP/2: this location proxies to a gRPC upstream (grpc_pass); " +
	"connect with HTTP/2 (h2c with prior knowledge, or ALPN \"h2\" over TLS)\n"

// h1Conn is what the HTTP/1 handler knows of the connection a request came
// on: $connection, $connection_requests and the keep-alive limits need it.
// net/http serves one request of a connection at a time, so it needs no
// lock.
type h1Conn struct {
	id       uint64
	start    time.Time
	requests int
	tls      *route.TLS // nil on cleartext
}

type h1ConnKey struct{}

// http1ConnContext is the listener's http.Server ConnContext: it gives
// every HTTP/1 connection its h1Conn.
func (s *Server) http1ConnContext(ctx context.Context, nc net.Conn) context.Context {
	return context.WithValue(ctx, h1ConnKey{}, &h1Conn{id: s.connSeq.Add(1), start: time.Now(), tls: tlsInfo(nc)})
}

func (h *http1Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rc := h.srv.cur.Load()
	lst := rc.listeners[h.ln.key]
	if lst == nil {
		http.Error(w, "no such listener", http.StatusMisdirectedRequest)
		return
	}
	headers := make([]hpack.HeaderField, 0, len(req.Header)+1)
	if req.Host != "" {
		headers = append(headers, hpack.HeaderField{Name: "host", Value: req.Host})
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			headers = append(headers, hpack.HeaderField{Name: strings.ToLower(k), Value: v})
		}
	}
	r := &route.Request{
		Method:    req.Method,
		Scheme:    "http",
		Authority: req.Host,
		Path:      req.RequestURI,
		Headers:   headers,
		Proto:     req.Proto,
		Start:     time.Now(),
	}
	hc, _ := req.Context().Value(h1ConnKey{}).(*h1Conn)
	if hc != nil {
		hc.requests++
		r.ConnID, r.ConnRequests = hc.id, hc.requests
		if hc.tls != nil {
			r.TLS, r.Scheme = hc.tls, "https"
		}
	}
	if a, ok := req.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		r.LocalAddr = a
	}
	if ra, err := net.ResolveTCPAddr("tcp", req.RemoteAddr); err == nil {
		r.RemoteAddr = ra
	}
	srv, loc, act := rc.table.Route(lst, r)
	if hc != nil {
		if misdirected(lst, srv, r) {
			act = &route.Action{Code: http.StatusMisdirectedRequest}
		} else if msg := rc.refusal(srv, hc.tls); msg != "" {
			act = &route.Action{Code: http.StatusBadRequest, Body: "400 Bad Request: " + msg + "\n"}
		}
	}
	if act == nil && passes(loc, r) {
		if !isGRPC(r) {
			h.srv.bridgeHTTP1(w, req, h.ln, hc) // counted, checked and logged as HTTP/2
			return
		}
		// A gRPC call over HTTP/1.x cannot work (its status travels in
		// trailers): say so rather than proxy it.
		act = &route.Action{Code: http.StatusBadRequest, Body: grpcNeedsHTTP2}
	}
	h.srv.stats.requests.Add(1)
	h.ln.stats.streams.Add(1)
	if srv != nil {
		access.RealIP(r, &srv.Settings.Access.RealIP) // nginx's post-read phase
	}
	var st *config.Settings
	switch {
	case loc != nil:
		st = &loc.Config.Settings
	case srv != nil:
		st = &srv.Settings
	}
	if st != nil && hc != nil && !keepAlive(st, hc, r.Start) {
		w.Header().Set("Connection", "close")
	}
	fc := &filterCtx{st: routeSettings(srv, loc, r), tbl: rc.table, r: r}
	if act == nil && loc != nil {
		if ph := rc.locs[loc.Config].access; ph != nil {
			ar := ph.Run(r)
			defer ar.Held.Release()
			if ar.Status != 0 {
				// The refusal is an error like nginx's own: its
				// error_page and add_header ... always apply.
				for _, h := range ar.Header {
					w.Header().Add(h.Name, h.Value)
				}
				act = &route.Action{Code: ar.Status}
			} else if ar.Delay > 0 {
				// limit_req's delay: this request's goroutine (net/http
				// has one per connection) waits, or stops waiting when
				// the client goes away.
				t := time.NewTimer(ar.Delay)
				select {
				case <-t.C:
				case <-req.Context().Done():
					t.Stop()
				}
			}
		}
	}
	if act != nil {
		act, fc = rc.errorPage(act, fc)
	}
	var code, body int
	if act == nil && loc != nil && loc.Config.Monitor != nil {
		code, body = h.srv.serveMonitorH1(w, req, loc.Config.Monitor)
	} else {
		code, body = h1Respond(w, req, act, fc)
	}
	if lg := rc.loggerFor(srv, loc); lg != nil {
		logHTTP1(lg, r, req, w.Header(), code, body)
	}
}

// keepAlive reports whether the connection may serve another request after
// this one, by the request's location's keepalive_timeout (0 disables
// keep-alive), keepalive_requests and keepalive_time, as nginx decides for
// HTTP/1.1.
func keepAlive(st *config.Settings, hc *h1Conn, now time.Time) bool {
	switch {
	case st.KeepaliveTimeout == 0:
		return false
	case st.KeepaliveRequests > 0 && hc.requests >= st.KeepaliveRequests:
		return false
	case st.KeepaliveTime > 0 && now.Sub(hc.start) > st.KeepaliveTime:
		return false
	}
	return true
}

// h1Respond writes the answer to an HTTP/1 request through the response
// phase (filter.go): the action's response (grpc_pass locations are
// bridged, bridge.go, and never get here). It returns the status and the
// body bytes written; 444 closes the connection without a response.
// Trailers (add_trailer) are not sent: the body has a Content-Length, and
// nginx sends trailers over HTTP/1.1 only with chunked encoding.
func h1Respond(w http.ResponseWriter, req *http.Request, act *route.Action, f *filterCtx) (code, bodyLen int) {
	if act == nil {
		act = &route.Action{Code: http.StatusNotFound}
	}
	if act.Close {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
		return act.Code, 0
	}
	fields, body, _ := pageFields(act, f, req.Method)
	code, _ = strconv.Atoi(fields[0].Value)
	hd := w.Header()
	for _, h := range fields[1:] {
		hd.Add(h.Name, h.Value)
	}
	w.WriteHeader(code)
	if req.Method == http.MethodHead {
		return code, 0
	}
	n, _ := w.Write([]byte(body))
	return code, n
}

// logHTTP1 writes the access log line of an HTTP/1 request. Header sizes
// are those of the HTTP/1.1 text: the request line and fields as received,
// the status line and fields as net/http writes them (with its Date).
func logHTTP1(lg *accesslog.Logger, r *route.Request, req *http.Request, hd http.Header, code, body int) {
	r.End = time.Now()
	r.Status = code
	r.BodyBytesSent = int64(body)
	r.RequestLength = int64(len(req.Method)+len(req.RequestURI)+len(req.Proto)+4) + fieldsSize(r.Headers) + 2
	if req.ContentLength > 0 {
		r.RequestLength += req.ContentLength
	}
	if code == 444 { // connection closed, nothing sent
		lg.Log(r)
		return
	}
	resp := make([]hpack.HeaderField, 0, len(hd)+1)
	for k, vs := range hd {
		for _, v := range vs {
			resp = append(resp, hpack.HeaderField{Name: strings.ToLower(k), Value: v})
		}
	}
	if _, ok := hd["Date"]; !ok {
		resp = append(resp, hpack.HeaderField{Name: "date", Value: r.End.UTC().Format(http.TimeFormat)})
	}
	r.ResponseHeaders = resp
	statusLine := len("HTTP/1.1 ") + 3 + 1 + len(http.StatusText(code)) + 2
	r.BytesSent = int64(statusLine) + fieldsSize(resp) + 2 + int64(body)
	lg.Log(r)
}
