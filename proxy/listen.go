package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/proxy/route"
	"go.uber.org/zap"
	"golang.org/x/net/http2"
)

// listener is one open listening socket.
type listener struct {
	key   string // network + " " + address, the key into running.listeners
	http2 bool
	ln    net.Listener

	h1once sync.Once
	h1     *http.Server
	h1conn *connQueue
}

// listen opens the socket of l: SO_REUSEPORT for reuseport, IPV6_V6ONLY
// for ipv6only, and the backlog= value (applied with a second listen(2),
// which Linux allows on a listening socket).
func listen(l *route.Listener) (*listener, error) {
	network := l.Network
	lc := net.ListenConfig{KeepAlive: -1}
	if network == "tcp" {
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				if l.ReusePort {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
				}
				if serr == nil && l.IPv6Only && strings.HasPrefix(l.Address, "[") {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 1)
				}
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	ln, err := lc.Listen(context.Background(), network, l.Address)
	if err != nil {
		return nil, err
	}
	if l.Backlog > 0 {
		if sc, ok := ln.(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil {
				rc.Control(func(fd uintptr) { syscall.Listen(int(fd), l.Backlog) })
			}
		}
	}
	return &listener{key: l.Network + " " + l.Address, http2: l.HTTP2, ln: ln}, nil
}

func (s *Server) acceptLoop(ln *listener) {
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := ln.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Error("accept failed", zap.Error(err))
			time.Sleep(delay)
			continue
		}
		delay = 0
		if s.maxConns > 0 && s.nconns.Load() >= s.maxConns {
			s.log.Warn("worker_connections are not enough, closing connection", zap.Int64("worker_connections", s.maxConns))
			nc.Close()
			continue
		}
		s.nconns.Add(1)
		s.wg.Add(1)
		go s.serveConn(ln, nc)
	}
}

// sniffTimeout bounds the wait for the first bytes (nginx's
// client_header_timeout default).
const sniffTimeout = 60 * time.Second

// serveConn tells HTTP/2 (prior knowledge) from HTTP/1.x by the first
// bytes and serves the connection. For HTTP/2 this goroutine becomes the
// connection's reader, so every frame on its stack stays for the life of
// the connection and decides whether an idle connection's stack can shrink
// to 4 KiB: sniffing and setting up happen in calls that return first.
func (s *Server) serveConn(ln *listener, nc net.Conn) {
	defer s.wg.Done()
	defer s.nconns.Add(-1)
	if s.sniffConn(ln, nc) {
		s.serveHTTP2(ln, nc)
	}
}

// sniffConn reads the first bytes of nc and serves or closes it unless it
// is HTTP/2 for an http2 listener, which it reports.
//
//go:noinline
func (s *Server) sniffConn(ln *listener, nc net.Conn) bool {
	nc.SetReadDeadline(time.Now().Add(sniffTimeout))
	proto, head, err := sniff(nc)
	if err != nil {
		nc.Close()
		return false
	}
	nc.SetReadDeadline(time.Time{})
	switch {
	case proto == protoHTTP2 && ln.http2:
		return true
	case proto == protoHTTP2:
		refuseHTTP2(nc)
	case proto == protoInvalid && ln.http2:
		// RFC 9113 3.4: an invalid preface is a connection error of
		// type PROTOCOL_ERROR.
		goAwayAndClose(nc, http2.ErrCodeProtocol, "gproxy: invalid HTTP/2 connection preface")
	default:
		// A listener without http2 speaks HTTP/1.x only, as nginx's does:
		// whatever arrives is net/http's to answer.
		s.serveHTTP1(ln, &prefixConn{Conn: nc, r: io.MultiReader(bytes.NewReader(head), nc)})
	}
	return false
}

// protocol is what the first bytes of a connection turn out to be.
type protocol uint8

const (
	protoUndecided protocol = iota // more bytes are needed
	protoHTTP2                     // the HTTP/2 client connection preface
	protoHTTP1                     // an HTTP/1.x request line
	protoInvalid                   // neither
)

// maxRequestLine bounds how much sniffing reads to recognise an HTTP/1.x
// request line: the default large_client_header_buffers size, nginx's own
// limit on a request line. A longer line that still looks like one is left
// to the HTTP/1 server to refuse.
const maxRequestLine = 8 << 10

// sniff reads the first bytes of nc until they are known to be the HTTP/2
// preface, an HTTP/1.x request line, or neither. It never reads past the
// preface, so the HTTP/2 codec starts at the first frame; for anything
// else it returns the bytes read, to be replayed.
func sniff(nc net.Conn) (protocol, []byte, error) {
	var pre [len(h2.ClientPreface)]byte
	n := 0
	for n < len(pre) {
		m, err := nc.Read(pre[n:])
		n += m
		if string(pre[:n]) != h2.ClientPreface[:n] {
			break
		}
		if err != nil {
			return protoInvalid, nil, err
		}
	}
	if n == len(pre) && string(pre[:]) == h2.ClientPreface {
		return protoHTTP2, nil, nil
	}
	b := append(make([]byte, 0, 256), pre[:n]...)
	for {
		if p := classifyRequestLine(b); p != protoUndecided {
			return p, b, nil
		}
		if len(b) >= maxRequestLine {
			return protoHTTP1, b, nil
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := nc.Read(b[len(b):min(cap(b), maxRequestLine)])
		b = b[:len(b)+m]
		if err != nil && m == 0 {
			return protoInvalid, nil, err
		}
	}
}

// classifyRequestLine tells whether b begins with an HTTP/1.x request line
// (RFC 9112 3: method SP request-target SP HTTP-version CRLF), is a prefix
// of one, or is not one. The version is what sets HTTP/1 apart from bytes
// that merely start with a word and a space.
func classifyRequestLine(b []byte) protocol {
	i := 0
	for i < len(b) && isTokenChar(b[i]) {
		i++
	}
	switch {
	case i == len(b):
		return protoUndecided
	case i == 0 || b[i] != ' ':
		return protoInvalid
	}
	i++
	start := i
	for i < len(b) && b[i] > ' ' && b[i] != 0x7f {
		i++
	}
	switch {
	case i == len(b):
		return protoUndecided
	case i == start || b[i] != ' ':
		return protoInvalid // no target, or HTTP/0.9 (no version)
	}
	i++
	// HTTP-version is "HTTP/1." DIGIT; '#' stands for the digit. The line
	// then ends with CRLF or a bare LF (RFC 9112 2.2).
	for _, want := range []byte("HTTP/1.#") {
		if i == len(b) {
			return protoUndecided
		}
		c := b[i]
		if want == '#' && (c < '0' || c > '9') || want != '#' && c != want {
			return protoInvalid
		}
		i++
	}
	switch {
	case i == len(b):
		return protoUndecided
	case b[i] == '\r' || b[i] == '\n':
		return protoHTTP1
	}
	return protoInvalid
}

// isTokenChar reports whether c may appear in a method (RFC 9110 5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return c < 0x80 && strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// refuseHTTP2 answers an HTTP/2 client on a listener without http2 (nginx
// would speak only HTTP/1.1 there) with a GOAWAY saying so, which gRPC
// clients report.
func refuseHTTP2(nc net.Conn) {
	goAwayAndClose(nc, http2.ErrCodeHTTP11Required,
		"gproxy: HTTP/2 is not enabled on this listener (add \"http2\" to its listen directive)")
}

// goAwayAndClose sends the server preface (SETTINGS) and a GOAWAY with
// code and msg, then closes nc the way the codec does (lingering: see
// h2's discardInput), so that the peer reads the GOAWAY rather than RST.
func goAwayAndClose(nc net.Conn, code http2.ErrCode, msg string) {
	defer nc.Close()
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	fr := http2.NewFramer(nc, nil)
	fr.WriteSettings()
	if fr.WriteGoAway(0, code, []byte(msg)) != nil {
		return
	}
	if cw, ok := nc.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
		return
	}
	nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	var buf [512]byte
	for n := 0; n < lingerMaxBytes; {
		m, err := nc.Read(buf[:])
		if err != nil {
			return
		}
		n += m
	}
}

// Lingering close bounds, as in the codec: nginx's lingering_timeout, and
// a byte count past which the peer is not worth waiting for.
const (
	lingerTimeout  = 5 * time.Second
	lingerMaxBytes = 1 << 20
)

// prefixConn replays sniffed bytes before reading the connection.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// serveHTTP2 serves an HTTP/2 connection whose preface has been read; it
// returns when the connection ends.
func (s *Server) serveHTTP2(ln *listener, nc net.Conn) {
	c := s.newClientConn(ln, nc)
	if !s.track(c) {
		nc.Close()
		return
	}
	defer s.untrack(c)
	c.h2.Serve()
}

// newClientConn sets up the HTTP/2 side of a client connection. It is kept
// out of serveHTTP2 because its frame is large (limits, settings) and
// serveHTTP2's frame stays on the reader's stack for the connection's life.
//
//go:noinline
func (s *Server) newClientConn(ln *listener, nc net.Conn) *clientConn {
	rc := s.cur.Load()
	lim := h2.DefaultLimits()
	if l := rc.listeners[ln.key]; l != nil && l.DefaultServer() != nil {
		lim = clientLimits(&l.DefaultServer().Settings)
	}
	c := &clientConn{
		srv:    s,
		ln:     ln,
		id:     s.connSeq.Add(1),
		remote: nc.RemoteAddr(),
		local:  nc.LocalAddr(),
	}
	c.h2 = h2.NewConn(nc, nil, h2.Server, lim, c)
	return c
}

// connQueue is a net.Listener fed with sniffed HTTP/1 connections, so one
// net/http server per listener serves them.
type connQueue struct {
	ch     chan net.Conn
	addr   net.Addr
	closed chan struct{}
	once   sync.Once
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

func (s *Server) serveHTTP1(ln *listener, nc net.Conn) {
	ln.h1once.Do(func() {
		rc := s.cur.Load()
		idle := 75 * time.Second
		if l := rc.listeners[ln.key]; l != nil && l.DefaultServer() != nil {
			idle = l.DefaultServer().Settings.KeepaliveTimeout
		}
		ln.h1conn = &connQueue{ch: make(chan net.Conn), addr: ln.ln.Addr(), closed: make(chan struct{})}
		ln.h1 = &http.Server{
			Handler:           &http1Handler{srv: s, ln: ln},
			ReadHeaderTimeout: sniffTimeout,
			IdleTimeout:       idle,
			ErrorLog:          zap.NewStdLog(s.log),
		}
		go ln.h1.Serve(ln.h1conn)
	})
	select {
	case ln.h1conn.ch <- nc:
	case <-ln.h1conn.closed:
		nc.Close()
	}
}

// stopHTTP1 stops the listener's HTTP/1 server, if one was started:
// gracefully with a live ctx, at once otherwise.
func (ln *listener) stopHTTP1(ctx context.Context) {
	ln.h1once.Do(func() {}) // orders us after a concurrent start
	if ln.h1 == nil {
		return
	}
	ln.h1conn.Close()
	if ctx == nil || ln.h1.Shutdown(ctx) != nil {
		ln.h1.Close()
	}
}
