package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/errlog"
	"github.com/gproxy/gproxy/proxy/route"
)

// bindTimeOption names the socket options that act only when a socket is
// bound: a reload cannot change them on an open socket.
var bindTimeOption = map[string]bool{"SO_REUSEPORT": true, "IPV6_V6ONLY": true}

// resettable gives the value that undoes an option a reload drops; the
// buffer sizes have none (the kernel's default cannot be asked for), so
// dropping rcvbuf= or sndbuf= needs a new socket.
var resettable = map[string]int{
	"SO_KEEPALIVE": 0, "TCP_FASTOPEN": 0, "TCP_DEFER_ACCEPT": 0,
}

// listenerChange is what a reload does to one kept listening socket: the
// setsockopt(2) calls that bring it to the new listen parameters, and its
// new backlog (0: unchanged).
type listenerChange struct {
	ln      *listener
	l       *route.Listener
	opts    []sockopt
	backlog int
}

// planKept works out how to bring the open socket of a, kept for the
// listen parameters b, to b's options; an error when only a new socket
// could (a bind-time option or a buffer size dropped).
func planKept(ln *listener, a, b *route.Listener) (listenerChange, error) {
	ch := listenerChange{ln: ln, l: b}
	oldOpts, newOpts := socketOptions(a), socketOptions(b)
	display := b.Address
	if b.Network == "unix" {
		display = "unix:" + b.Address
	}
	if a.SSL != b.SSL {
		// The TLS side of a socket is fixed when it opens.
		return ch, fmt.Errorf("changing \"ssl\" of \"listen %s\" needs a new socket: restart gproxy or upgrade the binary (USR2) on a free address", display)
	}
	for _, o := range oldOpts {
		if bindTimeOption[o.name] && !slices.Contains(newOpts, o) {
			return ch, fmt.Errorf("changing %s of \"listen %s\" needs a new socket: restart gproxy or upgrade the binary (USR2) on a free address", o.name, display)
		}
		if slices.ContainsFunc(newOpts, func(n sockopt) bool { return n.name == o.name }) {
			continue
		}
		v, ok := resettable[o.name]
		if !ok && !bindTimeOption[o.name] {
			if o.name == "TCP_KEEPIDLE" || o.name == "TCP_KEEPINTVL" || o.name == "TCP_KEEPCNT" {
				continue // meaningless once SO_KEEPALIVE is off; kept otherwise
			}
			return ch, fmt.Errorf("removing %s from \"listen %s\" needs a new socket: restart gproxy or upgrade the binary (USR2)", o.name, display)
		}
		ch.opts = append(ch.opts, sockopt{o.name, v})
	}
	for _, n := range newOpts {
		if bindTimeOption[n.name] {
			if !slices.Contains(oldOpts, n) {
				return ch, fmt.Errorf("changing %s of \"listen %s\" needs a new socket: restart gproxy or upgrade the binary (USR2) on a free address", n.name, display)
			}
			continue
		}
		if !slices.Contains(oldOpts, n) {
			ch.opts = append(ch.opts, n)
		}
	}
	if a.Backlog != b.Backlog {
		ch.backlog = b.Backlog
		if ch.backlog <= 0 {
			ch.backlog = defaultBacklog
		}
	}
	return ch, nil
}

// apply makes the change on the open socket; what the kernel refuses is
// an alert, as at start.
func (ch listenerChange) apply(s *Server) {
	if len(ch.opts) == 0 && ch.backlog == 0 {
		return
	}
	sc, ok := ch.ln.ln.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	display := ch.l.Address
	if ch.l.Network == "unix" {
		display = "unix:" + ch.l.Address
	}
	rc.Control(func(fd uintptr) {
		for _, o := range ch.opts {
			if err := setsockopt(int(fd), o.name, o.value); err != nil {
				s.log.Log(errlog.Alert, fmt.Sprintf("setsockopt(%s, %d) for %s failed, ignored %s", o.name, o.value, display, errlog.Errno(err)))
			}
		}
		if ch.backlog > 0 {
			if err := syscall.Listen(int(fd), ch.backlog); err != nil {
				s.log.Log(errlog.Alert, fmt.Sprintf("listen(%d) for %s failed, ignored %s", ch.backlog, display, errlog.Errno(err)))
			}
		}
	})
}

// Reload builds a running configuration from cfg beside the current one
// and swaps it in atomically: new streams use it, streams in flight finish
// on the old one. Listening sockets follow the new listen directives:
// sockets the new configuration keeps are never closed (their connections
// live on) and get the options that can change on an open socket; new
// ones open; removed ones close, and their connections get GOAWAY and
// finish their streams. Pooled upstream connections to peers the new
// configuration keeps in the same upstream are reused; the others close
// once their streams end. On error (a bad configuration, a socket that
// cannot be opened, an option that needs a new socket) nothing changes.
func (s *Server) Reload(cfg *config.Config) error {
	s.pools.NewGeneration()
	rc, err := s.build(cfg, false)
	if err != nil {
		return err
	}
	old := s.cur.Load()

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		rc.stopGroups()
		rc.logs.Close()
		return errors.New("shutting down")
	}
	current := map[string]*listener{}
	for _, ln := range s.listeners {
		current[ln.key] = ln
	}
	s.mu.Unlock()

	var changes []listenerChange
	var added, next []*listener
	fail := func(err error) error {
		for _, ln := range added {
			ln.ln.Close()
		}
		rc.stopGroups()
		rc.logs.Close()
		return err
	}
	for _, l := range rc.table.Listeners() {
		key := l.Network + " " + l.Address
		if ln := current[key]; ln != nil {
			ch, err := planKept(ln, old.listeners[key], l)
			if err != nil {
				return fail(err)
			}
			changes = append(changes, ch)
			next = append(next, ln)
			continue
		}
		ln, err := listen(l)
		if err != nil {
			return fail(err)
		}
		if l.SSL {
			ln.tlsConf = s.tlsConfig(ln)
		}
		added = append(added, ln)
		next = append(next, ln)
	}

	var removed []*listener
	s.mu.Lock()
	for key, ln := range current {
		if rc.listeners[key] == nil {
			ln.last.Store(old)
			removed = append(removed, ln)
		}
	}
	s.listeners = next
	s.retired = append(s.retired, removed...)
	s.mu.Unlock()

	for _, ch := range changes {
		ch.apply(s)
		ch.ln.http2.Store(ch.l.HTTP2)
	}
	s.cur.Store(rc)
	s.methods.configure(cfg)
	for _, ln := range added {
		s.wg.Add(1)
		go s.acceptLoop(ln)
	}
	for _, ln := range removed {
		s.retire(ln)
	}
	old.stopGroups()
	// Streams still running on old log through its Loggers to every
	// destination rc shares (accesslog.Set.Close keeps those open).
	old.logs.Close()
	// A stream that read the old configuration just before the swap may
	// still be picking a peer: drain unused pools a moment later.
	time.AfterFunc(drainDelay, func() { s.pools.DrainUnused() })
	return nil
}

// drainDelay is how long pools a reload dropped stay open for streams
// that started on the old configuration while it was being swapped out.
const drainDelay = time.Second

// retire closes a listening socket a reload removed: no more accepts,
// GOAWAY on its HTTP/2 connections (they close once their streams end)
// and a graceful stop of its HTTP/1.1 connections.
func (s *Server) retire(ln *listener) {
	ln.ln.Close()
	s.mu.Lock()
	var conns []*clientConn
	for c := range s.conns {
		if c.ln == ln {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.goAway()
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), retireTimeout)
		defer cancel()
		ln.stopHTTP1(ctx)
		s.mu.Lock()
		s.retired = slices.DeleteFunc(s.retired, func(x *listener) bool { return x == ln })
		s.mu.Unlock()
	}()
}

// retireTimeout bounds the graceful stop of a removed listener's HTTP/1.1
// connections.
const retireTimeout = 30 * time.Second

// inheritListener makes a net.Listener of a listening socket inherited
// from the previous binary, running control on it as on a new socket.
func inheritListener(f *os.File, control func(network, address string, c syscall.RawConn) error) (net.Listener, error) {
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("inherited socket %s: %w", f.Name(), err)
	}
	if sc, ok := ln.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			if err := control("", "", rc); err != nil {
				ln.Close()
				return nil, err
			}
		}
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true)
	}
	return ln, nil
}
