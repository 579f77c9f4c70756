package proxy

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// An HTTP/1.x request to a grpc_pass location is proxied as nginx proxies
// it: as an HTTP/2 stream to the upstream, its response sent back as
// HTTP/1.x. gproxy carries the request into its own HTTP/2 stream engine
// over an in-process connection (net.Pipe), so it meets everything an
// HTTP/2 request meets (routing again, the access phase, limits,
// balancing, grpc_next_upstream, error pages, the access log) with no
// second implementation; only the client-facing framing is HTTP/1's. It
// is not the hot path: each such request costs a pipe and an HTTP/2
// handshake in memory.

// bridgeTimeout bounds the in-memory handshake of a bridged request.
const bridgeTimeout = 5 * time.Second

// bridgeHTTP1 proxies req, an HTTP/1.x request routed to a grpc_pass
// location, through an in-process HTTP/2 connection served as if it came
// from req's client (its addresses, TLS state, connection number and
// protocol version).
func (s *Server) bridgeHTTP1(w http.ResponseWriter, req *http.Request, ln *listener, hc *h1Conn) {
	cliEnd, srvEnd := net.Pipe()
	local, _ := req.Context().Value(http.LocalAddrContextKey).(net.Addr)
	remote, _ := net.ResolveTCPAddr("tcp", req.RemoteAddr)
	c := s.newClientConn(ln, srvEnd)
	c.proto = req.Proto
	if local != nil {
		c.local = local
	}
	if remote != nil {
		c.remote = remote
	}
	if hc != nil {
		c.id, c.requests, c.tls, c.start = hc.id, hc.requests-1, hc.tls, hc.start
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srvEnd.SetReadDeadline(time.Now().Add(bridgeTimeout))
		preface := make([]byte, len(h2.ClientPreface))
		if _, err := io.ReadFull(srvEnd, preface); err != nil || string(preface) != h2.ClientPreface {
			srvEnd.Close()
			return
		}
		srvEnd.SetReadDeadline(time.Time{})
		c.h2.Serve()
	}()
	defer func() {
		cliEnd.Close()
		c.h2.Close()
		<-served
	}()
	tr := &http2.Transport{AllowHTTP: true, DisableCompression: true}
	cc, err := tr.NewClientConn(cliEnd)
	if err != nil {
		http.Error(w, "bridge: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer cc.Close()
	res, err := cc.RoundTrip(bridgedRequest(req, local))
	if err != nil {
		if req.Context().Err() == nil {
			writeBuiltin(w, http.StatusBadGateway)
		}
		return
	}
	defer res.Body.Close()
	copyResponse(w, req, res)
}

// bridgedRequest is req as the HTTP/2 request the bridge sends: the same
// method, target, fields and body, less HTTP/1's connection fields (RFC
// 9113 8.2.2).
func bridgedRequest(req *http.Request, local net.Addr) *http.Request {
	host := req.Host
	if host == "" && local != nil {
		host = local.String() // HTTP/1.0 without Host
	}
	target := req.RequestURI
	if !strings.HasPrefix(target, "/") {
		target = req.URL.RequestURI() // absolute-form or "*"
	}
	hd := make(http.Header, len(req.Header)+1)
	for k, vs := range req.Header {
		if connectionField(k) {
			continue
		}
		hd[k] = vs
	}
	if te := req.Header.Get("Te"); httpguts.HeaderValuesContainsToken([]string{te}, "trailers") {
		hd["Te"] = []string{"trailers"}
	}
	if _, ok := hd["User-Agent"]; !ok {
		hd["User-Agent"] = []string{""} // send none rather than the transport's own
	}
	out := &http.Request{
		Method:        req.Method,
		URL:           &url.URL{Scheme: "http", Host: host, Opaque: target},
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        hd,
		Host:          host,
		ContentLength: req.ContentLength,
		Body:          req.Body,
		Trailer:       req.Trailer,
	}
	if req.ContentLength == 0 && len(req.TransferEncoding) == 0 {
		out.Body = nil
	}
	return out.WithContext(req.Context())
}

// connectionField reports whether field k of an HTTP/1.x request is not
// to be sent as HTTP/2: hopByHop's, TE (sent apart) and Host (the
// authority). Fields the Connection field names pass, as nginx passes
// them.
func connectionField(k string) bool {
	lk := strings.ToLower(k)
	return hopByHop(lk) || lk == "te" || lk == "host"
}

// copyResponse writes res to the HTTP/1.x client, flushing as the body
// comes (a streamed response is not held back). Trailers go out only to an
// HTTP/1.1 client, in the chunked encoding, as nginx sends them.
func copyResponse(w http.ResponseWriter, req *http.Request, res *http.Response) {
	hd := w.Header()
	for k, vs := range res.Header {
		hd[k] = vs
	}
	chunked := res.ContentLength < 0 && req.ProtoAtLeast(1, 1)
	w.WriteHeader(res.StatusCode)
	rcl := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			rcl.Flush()
		}
		if err != nil {
			break
		}
	}
	if chunked {
		for k, vs := range res.Trailer {
			for _, v := range vs {
				hd.Add(http.TrailerPrefix+k, v)
			}
		}
	}
}

// writeBuiltin answers with nginx's page for code.
func writeBuiltin(w http.ResponseWriter, code int) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(code)
	io.WriteString(w, builtinPage(code))
}

// passes reports whether a request Route placed in loc is proxied: the
// location's grpc_pass, or that of an if block whose condition held.
func passes(loc *route.Location, r *route.Request) bool {
	return loc != nil && (loc.Config.GRPCPass != nil || r.IfPass != nil) && loc.Config.Monitor == nil
}
