package proxy

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/accesslog"
	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http2/hpack"
)

// http1Handler answers HTTP/1.x requests: `return` locations (probes,
// redirects) work; a grpc_pass location gets a plain-text 400 explaining
// that gRPC needs HTTP/2. It is not the hot path.
type http1Handler struct {
	srv *Server
	ln  *listener
}

// grpcNeedsHTTP2 is the body sent to HTTP/1.x requests for grpc_pass
// locations.
const grpcNeedsHTTP2 = "gRPC requires HTTP/2: this location proxies to a gRPC upstream (grpc_pass); " +
	"connect with HTTP/2 (h2c with prior knowledge)\n"

// h1Conn is what the HTTP/1 handler knows of the connection a request came
// on: $connection, $connection_requests and the keep-alive limits need it.
// net/http serves one request of a connection at a time, so it needs no
// lock.
type h1Conn struct {
	id       uint64
	start    time.Time
	requests int
}

type h1ConnKey struct{}

// http1ConnContext is the listener's http.Server ConnContext: it gives
// every HTTP/1 connection its h1Conn.
func (s *Server) http1ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, h1ConnKey{}, &h1Conn{id: s.connSeq.Add(1), start: time.Now()})
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
	}
	if a, ok := req.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		r.LocalAddr = a
	}
	if ra, err := net.ResolveTCPAddr("tcp", req.RemoteAddr); err == nil {
		r.RemoteAddr = ra
	}
	h.srv.stats.requests.Add(1)
	h.ln.stats.streams.Add(1)
	srv, loc, act := rc.table.Route(lst, r)
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
	var code, body int
	if act == nil && loc != nil && loc.Config.Monitor != nil {
		code, body = h.srv.serveMonitorH1(w, req, loc.Config.Monitor)
	} else {
		code, body = h1Respond(w, req, act)
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

// h1Respond writes the answer to an HTTP/1 request: the action's response,
// or for a grpc_pass location (no action) a 400 saying gRPC needs HTTP/2.
// It returns the status and the body bytes written; 444 closes the
// connection without a response.
func h1Respond(w http.ResponseWriter, req *http.Request, act *route.Action) (code, bodyLen int) {
	hd := w.Header()
	if act == nil {
		hd.Set("Content-Type", "text/plain; charset=utf-8")
		hd.Set("Server", "gproxy")
		w.WriteHeader(http.StatusBadRequest)
		n, _ := w.Write([]byte(grpcNeedsHTTP2))
		return http.StatusBadRequest, n
	}
	if act.Close {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
		return act.Code, 0
	}
	body, ctype := actionBody(act)
	hd.Set("Server", "gproxy")
	if act.Location != "" {
		hd.Set("Location", act.Location)
	}
	if ctype != "" {
		hd.Set("Content-Type", ctype)
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(act.Code)
	if req.Method == http.MethodHead {
		return act.Code, 0
	}
	n, _ := w.Write([]byte(body))
	return act.Code, n
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
