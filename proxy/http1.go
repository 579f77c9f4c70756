package proxy

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

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
	if a, ok := req.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		r.LocalAddr = a
	}
	if ra, err := net.ResolveTCPAddr("tcp", req.RemoteAddr); err == nil {
		r.RemoteAddr = ra
	}
	_, _, act := rc.table.Route(lst, r)
	if act == nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Server", "gproxy")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(grpcNeedsHTTP2))
		return
	}
	if act.Close {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
		return
	}
	body, ctype := actionBody(act)
	hd := w.Header()
	hd.Set("Server", "gproxy")
	if act.Location != "" {
		hd.Set("Location", act.Location)
	}
	if ctype != "" {
		hd.Set("Content-Type", ctype)
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(act.Code)
	if req.Method != http.MethodHead {
		w.Write([]byte(body))
	}
}
