package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gproxy/gproxy/proxy/errlog"
	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/proxy/route"
	"go.uber.org/zap"
	"golang.org/x/net/http2"
)

// listener is one open listening socket.
type listener struct {
	key   string // network + " " + address, the key into running.listeners
	http2 atomic.Bool
	ln    net.Listener
	// last is the running configuration a reload removed this listener
	// from: its connections finish their streams on it (see
	// clientConn.HandleStream). nil while the listener is in use.
	last atomic.Pointer[running]

	stats listenerStats
	// tlsConf is set on an ssl listener (see tlsConfig).
	tlsConf *tls.Config

	// alerts are the socket options the kernel refused. nginx goes on
	// without them, logging an alert for each, and so does gproxy: the
	// accept loop logs them.
	alerts []sockoptFailure

	h1once sync.Once
	h1     *http.Server
	h1conn *connQueue
}

// sockopt is one setsockopt(2) call on a listening socket.
type sockopt struct {
	name  string // as nginx's alerts name it: "TCP_KEEPIDLE"
	value int
}

// sockoptFailure is a socket option the kernel refused.
type sockoptFailure struct {
	msg string
	err error
}

// socketOptions lists the setsockopt(2) calls that l's listen parameters
// ask for, in nginx's order. On Linux, accepted connections inherit the
// buffer sizes and TCP keepalive settings of the listening socket, so
// setting them once here gives every connection its so_keepalive, rcvbuf
// and sndbuf, as in nginx.
func socketOptions(l *route.Listener) []sockopt {
	var opts []sockopt
	add := func(name string, value int) { opts = append(opts, sockopt{name, value}) }
	if l.ReusePort {
		add("SO_REUSEPORT", 1)
	}
	if isIPv6(l) {
		// nginx's ipv6only defaults to on, so that `listen [::]:80` and
		// `listen 80` can both open; Go's default is dual stack.
		add("IPV6_V6ONLY", boolInt(!l.DualStack))
	}
	if l.RcvBuf > 0 {
		add("SO_RCVBUF", clampInt32(int64(l.RcvBuf)))
	}
	if l.SndBuf > 0 {
		add("SO_SNDBUF", clampInt32(int64(l.SndBuf)))
	}
	if ka := l.SoKeepalive; ka.Set {
		add("SO_KEEPALIVE", boolInt(ka.On))
		if ka.Idle > 0 {
			add("TCP_KEEPIDLE", clampInt32(int64(ka.Idle/time.Second)))
		}
		if ka.Interval > 0 {
			add("TCP_KEEPINTVL", clampInt32(int64(ka.Interval/time.Second)))
		}
		if ka.Count > 0 {
			add("TCP_KEEPCNT", clampInt32(int64(ka.Count)))
		}
	}
	if l.FastOpen > 0 {
		add("TCP_FASTOPEN", clampInt32(int64(l.FastOpen)))
	}
	if l.Deferred {
		// One second, as nginx: the kernel cannot tell how long a
		// connection waited, so a longer wait buys nothing.
		add("TCP_DEFER_ACCEPT", 1)
	}
	return opts
}

// sameSocket reports whether b asks for the socket options and backlog of
// a, so that a reload may keep a's open socket for b. (A reload that
// changes them cannot keep it: options such as IPV6_V6ONLY and
// SO_REUSEPORT take effect at bind time only.)
func sameSocket(a, b *route.Listener) bool {
	return a.Network == b.Network && a.Address == b.Address && a.Backlog == b.Backlog &&
		slices.Equal(socketOptions(a), socketOptions(b))
}

// isIPv6 reports whether l is a TCP socket on an IPv6 address.
func isIPv6(l *route.Listener) bool {
	ap, err := netip.ParseAddrPort(l.Address)
	return l.Network == "tcp" && err == nil && ap.Addr().Is6() && !ap.Addr().Is4In6()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// clampInt32 keeps v within a C int: a larger value, which nginx's
// configuration accepts, would wrap; the kernel caps buffer sizes and
// queue lengths at its own maxima and refuses too long keepalive times.
func clampInt32(v int64) int { return int(min(v, math.MaxInt32)) }

// defaultBacklog is nginx's listen queue length on Linux when listen has
// no backlog= (NGX_LISTEN_BACKLOG).
const defaultBacklog = 511

// listen opens the socket of l with the socket options of its listen
// parameters (see socketOptions) and its backlog= (applied with a second
// listen(2), which Linux allows on a listening socket). An option the
// kernel refuses is an alert, not an error, as in nginx.
func listen(l *route.Listener) (*listener, error) {
	return listenOn(l, nil)
}

// listenOn is listen, or with inherited non-nil the same on a listening
// socket inherited from the previous binary (USR2): the options that can
// change on a bound socket are applied to it, the others (SO_REUSEPORT,
// IPV6_V6ONLY) are the socket's already.
func listenOn(l *route.Listener, inherited *os.File) (*listener, error) {
	opts := socketOptions(l)
	if inherited != nil {
		opts = slices.DeleteFunc(opts, func(o sockopt) bool { return bindTimeOption[o.name] })
	}
	display := l.Address
	if l.Network == "unix" {
		display = "unix:" + l.Address
	}
	var alerts []sockoptFailure
	fail := func(msg string, err error) {
		alerts = append(alerts, sockoptFailure{msg + " for " + display + " failed, ignored", err})
	}
	lc := net.ListenConfig{
		// Go turns TCP keepalive on (15 s) for every accepted connection
		// unless told not to; nginx leaves it to so_keepalive, which the
		// listening socket passes on to accepted connections.
		KeepAlive: -1,
		Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				for _, o := range opts {
					if err := setsockopt(int(fd), o.name, o.value); err != nil {
						fail(fmt.Sprintf("setsockopt(%s, %d)", o.name, o.value), err)
					}
				}
			})
		},
	}
	var ln net.Listener
	var err error
	if inherited != nil {
		ln, err = inheritListener(inherited, lc.Control)
	} else {
		ln, err = lc.Listen(context.Background(), l.Network, l.Address)
	}
	if err != nil {
		// nginx's words: bind() to 127.0.0.1:81 failed (13: Permission denied)
		var se *os.SyscallError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%s() to %s failed %s", se.Syscall, display, errlog.Errno(se.Err))
		}
		return nil, err
	}
	// Go listens with the kernel's somaxconn; nginx with backlog= or 511.
	backlog := l.Backlog
	if backlog <= 0 {
		backlog = defaultBacklog
	}
	if sc, ok := ln.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) {
				if err := syscall.Listen(int(fd), backlog); err != nil {
					fail(fmt.Sprintf("listen(%d)", backlog), err)
				}
			})
		}
	}
	x := &listener{key: l.Network + " " + l.Address, ln: ln, alerts: alerts}
	x.http2.Store(l.HTTP2)
	return x, nil
}

func (s *Server) acceptLoop(ln *listener) {
	defer s.wg.Done()
	for _, a := range ln.alerts {
		s.log.Log(errlog.Alert, a.msg+" "+errlog.Errno(a.err))
	}
	var delay time.Duration
	for {
		nc, err := ln.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Log(errlog.Crit, "accept4() failed "+errlog.Errno(err))
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.stats.accepts.Add(1)
		ln.stats.accepted.Add(1)
		if s.maxConns > 0 && s.nconns.Load() >= s.maxConns && !s.makeRoom() {
			s.log.Log(errlog.Alert, strconv.FormatInt(s.maxConns, 10)+" worker_connections are not enough")
			nc.Close()
			continue
		}
		s.stats.handled.Add(1)
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
	ln.stats.active.Add(1)
	started := false // serveHTTP2 took over: connDone runs when it ends
	defer func() {
		if !started {
			s.connDone(ln)
		}
	}()
	// Until its preface is read the connection is idle for drainIdle:
	// registered under the socket it was accepted as.
	raw := nc
	s.mu.Lock()
	s.sniffing[raw] = time.Now()
	s.mu.Unlock()
	quiet := func() {
		s.mu.Lock()
		delete(s.sniffing, raw)
		s.mu.Unlock()
	}
	if ln.tlsConf != nil {
		tc := s.handshake(ln, nc)
		if tc == nil {
			quiet()
			return
		}
		nc = tc
		if tc.info.State.NegotiatedProtocol == "http/1.1" {
			quiet()
			s.serveHTTP1(ln, tc)
			return
		}
	}
	ok := s.sniffConn(ln, nc)
	quiet()
	if ok {
		started = s.serveHTTP2(ln, nc)
	}
}

// connDone counts a client connection out once it has ended.
func (s *Server) connDone(ln *listener) {
	ln.stats.active.Add(-1)
	s.nconns.Add(-1)
	s.wg.Done()
}

// sniffConn reads the first bytes of nc and serves or closes it unless it
// is HTTP/2 for an http2 listener, which it reports.
//
//go:noinline
func (s *Server) sniffConn(ln *listener, nc net.Conn) bool {
	timeout := sniffTimeout
	if l := s.cur.Load().listeners[ln.key]; l != nil && l.DefaultServer() != nil && l.DefaultServer().Settings.ClientHeaderTimeout > 0 {
		timeout = l.DefaultServer().Settings.ClientHeaderTimeout
	}
	nc.SetReadDeadline(time.Now().Add(timeout))
	proto, head, err := sniff(nc)
	if err != nil {
		nc.Close()
		return false
	}
	nc.SetReadDeadline(time.Time{})
	switch {
	case proto == protoHTTP2 && ln.http2.Load():
		return true
	case proto == protoHTTP2:
		refuseHTTP2(nc)
	case proto == protoInvalid && ln.http2.Load():
		// RFC 9113 3.4: an invalid preface is a connection error of
		// type PROTOCOL_ERROR.
		goAwayAndClose(nc, http2.ErrCodeProtocol, "gproxy: invalid HTTP/2 connection preface")
	default:
		// A listener without http2 speaks HTTP/1.x only, as nginx's does:
		// whatever arrives is net/http's to answer.
		s.serveHTTP1(ln, replay(nc, head))
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

// replay returns nc reading head first; a TLS connection keeps its TLS
// state.
func replay(nc net.Conn, head []byte) net.Conn {
	if t, ok := nc.(*tlsConn); ok {
		return &tlsConn{Conn: &prefixConn{Conn: t.Conn, r: io.MultiReader(bytes.NewReader(head), t.Conn)}, info: t.info}
	}
	return &prefixConn{Conn: nc, r: io.MultiReader(bytes.NewReader(head), nc)}
}

// serveHTTP2 starts serving an HTTP/2 connection whose preface has been
// read and reports whether it did; the codec's own goroutines serve it
// from then on (this one, grown by the TLS handshake and sniffing, ends),
// and connDone runs when the connection ends.
func (s *Server) serveHTTP2(ln *listener, nc net.Conn) bool {
	c := s.newClientConn(ln, nc)
	if !s.track(c) {
		nc.Close()
		return false
	}
	c.h2.Start(func(error) {
		s.untrack(c)
		s.connDone(ln)
	})
	return true
}

// newClientConn sets up the HTTP/2 side of a client connection.
func (s *Server) newClientConn(ln *listener, nc net.Conn) *clientConn {
	rc := s.cur.Load()
	lim := h2.DefaultLimits()
	if l := rc.listeners[ln.key]; l != nil && l.DefaultServer() != nil {
		lim = clientLimits(&l.DefaultServer().Settings)
	}
	c := &clientConn{
		srv:    s,
		ln:     ln,
		tls:    tlsInfo(nc),
		id:     s.connSeq.Add(1),
		remote: nc.RemoteAddr(),
		local:  nc.LocalAddr(),
		start:  time.Now(),
	}
	if t, ok := nc.(*tlsConn); ok {
		nc = t.Conn // the *tls.Conn itself, whose CloseWrite the codec uses
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
			ConnContext:       s.http1ConnContext,
			IdleTimeout:       idle,
			ErrorLog:          zap.NewStdLog(s.log),
		}
		go ln.h1.Serve(ln.h1conn)
	})
	if ln.h1conn == nil {
		// The listener stopped before its first HTTP/1 connection.
		nc.Close()
		return
	}
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

// drainBatch is how many idle connections one accept at worker_connections
// may close, as nginx's ngx_drain_connections.
const drainBatch = 32

// drainGrace is how long a drained HTTP/2 connection has to read its
// GOAWAY before it is closed.
const drainGrace = 100 * time.Millisecond

// makeRoom finds a slot for a new connection at worker_connections: one
// freed by an earlier drain not yet taken, or one of a new drain (the
// others are kept for the next accepts, so that one drain serves up to
// drainBatch new connections, as nginx's does).
func (s *Server) makeRoom() bool {
	for {
		n := s.freed.Load()
		if n <= 0 {
			break
		}
		if s.freed.CompareAndSwap(n, n-1) {
			return true
		}
	}
	if n := s.drainIdle(); n > 0 {
		s.freed.Add(int64(n - 1))
		return true
	}
	return false
}

// drainIdle makes room at worker_connections as nginx does with its
// reusable connections: it closes up to drainBatch of the connections
// idle the longest (least recently used first), whether they have not yet
// sent their preface or are HTTP/2 connections without open streams
// (GOAWAY, then close). It returns how many it closed; their slots free
// within drainGrace.
func (s *Server) drainIdle() int {
	type idleConn struct {
		since time.Time
		nc    net.Conn    // not yet sniffed
		c     *clientConn // HTTP/2
	}
	var cands []idleConn
	s.mu.Lock()
	for nc, since := range s.sniffing {
		cands = append(cands, idleConn{since: since, nc: nc})
	}
	for c := range s.conns {
		if since, idle := c.h2.IdleSince(); idle && !c.draining {
			cands = append(cands, idleConn{since: since, c: c})
		}
	}
	slices.SortFunc(cands, func(a, b idleConn) int { return a.since.Compare(b.since) })
	cands = cands[:min(len(cands), drainBatch)]
	for _, x := range cands {
		if x.nc != nil {
			delete(s.sniffing, x.nc)
		} else {
			x.c.draining = true
		}
	}
	s.mu.Unlock()
	for _, x := range cands {
		if x.nc != nil {
			x.nc.Close()
			continue
		}
		// nginx sends GOAWAY and closes at once; a moment lets the
		// GOAWAY reach the client before the close, and no lingering
		// lets a client that ignores it keep the slot.
		c := x.c
		c.h2.GoAway()
		time.AfterFunc(drainGrace, func() { c.h2.Close() })
	}
	// nginx warns at most once a second.
	if now := time.Now().Unix(); len(cands) > 0 && s.drainLogged.Swap(now) != now {
		s.log.Warn(strconv.FormatInt(s.maxConns, 10) + " worker_connections are not enough, reusing connections")
	}
	return len(cands)
}
