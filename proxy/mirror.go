package proxy

import (
	"strings"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/proxy/route"
	"github.com/gproxy/gproxy/upstream"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// mirror (nginx's ngx_http_mirror_module): each request of a location with
// `mirror URI` also goes, as a background subrequest, to the location URI
// names, with the same method, arguments, fields and (mirror_request_body
// on, the default) body; its response is read and dropped. With the body,
// the request itself waits for its whole body before it is proxied, as in
// nginx, which is what makes $request_body available. A mirror location
// that proxies (grpc_pass) gets a stream to its upstream; one that does
// not (nginx would serve a file or an error nobody reads) costs nothing.

// defaultMaxBody is nginx's client_max_body_size default (1m), applied to
// a body read whole for mirror_request_body.
const defaultMaxBody = 1 << 20

// mirrorReq is what a call keeps to send its mirrors once it begins.
type mirrorReq struct {
	rc     *running
	server *config.Server
	uris   []string
	fields []hpack.HeaderField // the client's request header list
	r      route.Request       // a copy of the request, for variables
	body   bool                // send the body (mirror_request_body)
}

// newMirrorReq keeps what the mirrors of a request need: its fields are
// copied, since f is the reader's.
func newMirrorReq(rc *running, srv *config.Server, st *config.Settings, f *http2.MetaHeadersFrame, r *route.Request) *mirrorReq {
	m := &mirrorReq{rc: rc, server: srv, uris: st.Mirrors, body: st.MirrorRequestBody, r: *r}
	m.fields = append([]hpack.HeaderField(nil), f.Fields...)
	m.r.Headers = m.fields
	m.r.Upstreams = nil
	return m
}

// send starts one subrequest per mirror URI, with body as the request
// body (nil: none). It does not wait for them.
func (m *mirrorReq) send(body []byte) {
	if !m.body {
		body = nil
	}
	for _, uri := range m.uris {
		go m.one(uri, body)
	}
}

// one sends the subrequest for uri.
func (m *mirrorReq) one(uri string, body []byte) {
	rc := m.rc
	r := m.r
	path := uri
	if _, args, ok := strings.Cut(m.r.Path, "?"); ok {
		path += "?" + args // nginx passes the request's arguments
	}
	r.Path = path
	loc := rc.table.Location(m.server, path)
	if loc == nil || loc.Config.GRPCPass == nil {
		return // nothing leaves gproxy: the response would be dropped anyway
	}
	st := &loc.Config.Settings
	g, _, sch, err := rc.groupFor(loc.Config.GRPCPass, rc.table, &r, st)
	if err != nil {
		return
	}
	scheme := schemeOf(sch)
	info := &upstream.StreamInfo{Method: r.Method, Path: path, Authority: r.Authority, RemoteAddr: r.RemoteAddr, Start: time.Now()}
	if key := g.HashKey(); key != nil {
		info.Key = rc.table.AppendExpand(nil, *key, &r)
	}
	peer, err := g.Pick(info)
	if err != nil {
		return
	}
	fields := make([]hpack.HeaderField, 0, len(m.fields))
	for _, f := range m.fields {
		if f.Name == ":path" {
			f.Value = path
		}
		fields = append(fields, f)
	}
	fields = upstreamRequest(make([]hpack.HeaderField, 0, len(fields)+2), fields, scheme, upstreamAuthority(g.Name), loc, rc.table, &r)
	sink := &mirrorSink{peer: peer, start: time.Now()}
	end := len(body) == 0
	opened := func(s *h2.Stream) {
		if !end {
			s.WriteData(body, true)
		}
	}
	if s := peer.Pool.TryOpen(fields, end, sink); s != nil {
		opened(s)
		return
	}
	s := peer.Pool.Open(fields, end, sink, st.GRPC.ConnectTimeout, func(conn *h2.Conn, err error) {
		if err != nil {
			sink.done(err)
			return
		}
		s, err := conn.OpenStream(fields, end, sink)
		if err != nil {
			sink.done(err)
			return
		}
		opened(s)
	})
	if s != nil {
		opened(s)
	}
}

// mirrorSink reads a mirror subrequest's response and drops it, and tells
// the peer when the stream is over.
type mirrorSink struct {
	peer  *upstream.Peer
	start time.Time
	once  sync.Once
}

func (m *mirrorSink) HandleHeaders(_ *h2.Stream, f *http2.MetaHeadersFrame) {
	if f.StreamEnded() {
		m.done(nil)
	}
}

func (m *mirrorSink) HandleData(s *h2.Stream, p []byte, end bool) {
	s.Credit(len(p))
	if end {
		m.done(nil)
	}
}

func (m *mirrorSink) HandleReset(_ *h2.Stream, err error) { m.done(err) }
func (m *mirrorSink) HandleSent(*h2.Stream, int)          {}

func (m *mirrorSink) done(err error) {
	m.once.Do(func() {
		m.peer.Done(upstream.Outcome{GRPCStatus: -1, Err: err, Duration: time.Since(m.start)})
	})
}
