package proxy

import (
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

// serveConn tells HTTP/2 (prior knowledge) from HTTP/1.x by the first 24
// bytes and serves the connection. For HTTP/2 this goroutine becomes the
// connection's reader.
func (s *Server) serveConn(ln *listener, nc net.Conn) {
	defer s.wg.Done()
	defer s.nconns.Add(-1)
	var buf [len(h2.ClientPreface)]byte
	n := 0
	nc.SetReadDeadline(time.Now().Add(sniffTimeout))
	for n < len(buf) {
		m, err := nc.Read(buf[n:])
		n += m
		if string(buf[:n]) != h2.ClientPreface[:n] {
			break
		}
		if err != nil {
			nc.Close()
			return
		}
	}
	nc.SetReadDeadline(time.Time{})
	if n == len(buf) && string(buf[:]) == h2.ClientPreface {
		if !ln.http2 {
			refuseHTTP2(nc)
			return
		}
		s.serveHTTP2(ln, nc)
		return
	}
	s.serveHTTP1(ln, &prefixConn{Conn: nc, r: io.MultiReader(strings.NewReader(string(buf[:n])), nc)})
}

// refuseHTTP2 answers an HTTP/2 client on a listener without http2 (nginx
// would speak only HTTP/1.1 there) with a GOAWAY saying so, which gRPC
// clients report.
func refuseHTTP2(nc net.Conn) {
	defer nc.Close()
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	fr := http2.NewFramer(nc, nil)
	fr.WriteSettings()
	fr.WriteGoAway(0, http2.ErrCodeHTTP11Required,
		[]byte("gproxy: HTTP/2 is not enabled on this listener (add \"http2\" to its listen directive)"))
}

// prefixConn replays sniffed bytes before reading the connection.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (s *Server) serveHTTP2(ln *listener, nc net.Conn) {
	rc := s.cur.Load()
	lim := h2.DefaultLimits()
	if l := rc.listeners[ln.key]; l != nil && l.DefaultServer() != nil {
		lim = clientLimits(l.DefaultServer().Settings)
	}
	c := &clientConn{
		srv:    s,
		ln:     ln,
		id:     s.connSeq.Add(1),
		remote: nc.RemoteAddr(),
		local:  nc.LocalAddr(),
	}
	c.h2 = h2.NewConn(nc, nil, h2.Server, lim, c)
	if !s.track(c) {
		nc.Close()
		return
	}
	defer s.untrack(c)
	c.h2.Serve()
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
