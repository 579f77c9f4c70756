// Package syslog sends log messages to a syslog server as nginx does: one
// datagram per message, over UDP or a unix datagram socket, in the BSD
// syslog shape
//
//	<PRI>Mmm dd hh:mm:ss HOSTNAME TAG: MSG
//
// where PRI is facility*8+severity, the time is local, HOSTNAME is the
// machine's name in lower case (left out, with its space, under
// nohostname) and TAG may be empty. Both the error log (cmd/gproxy) and
// access logs (proxy/accesslog) write through a Sink; the parser has
// already checked and resolved the destination (config.Syslog).
//
// Like nginx, a Sink connects on its first message, not when it is made,
// so a destination that does not exist yet (a syslog daemon still
// starting) is no configuration error; after a failed send it closes the
// socket and connects again for the next message. Sends never wait: a
// message the socket cannot take at once (a full unix socket queue) is
// lost, as with nginx's non-blocking sockets, rather than stalling the
// stream or goroutine that logs it.
package syslog

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

// Severities, as nginx names them.
const (
	Emerg = iota
	Alert
	Crit
	Error
	Warn
	Notice
	Info
	Debug
)

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("syslog: sink closed")

// hostname is the HOSTNAME field: gethostname(2) in lower case, read once
// per process as nginx reads it once per configuration cycle.
var hostname = sync.OnceValue(func() string {
	h, _ := os.Hostname()
	return strings.ToLower(h)
})

// Sink is one syslog destination. It is safe for concurrent use.
type Sink struct {
	cfg     config.Syslog
	onError func(error)

	cur    atomic.Pointer[conn] // nil until the first message and after a failed send
	mu     sync.Mutex           // serialises connecting and closing
	closed atomic.Bool

	lastReport atomic.Int64 // UnixNano of the last onError call
}

// conn is a connected socket and its raw handle, kept to write without
// the runtime's waiting for writability.
type conn struct {
	c  net.Conn
	rc syscall.RawConn
}

// New returns a Sink for cfg. onError, when not nil, hears about failed
// sends, at most once a second (the messages themselves are lost, as with
// nginx); it must not log through the same Sink.
func New(cfg config.Syslog, onError func(error)) *Sink {
	return &Sink{cfg: cfg, onError: onError}
}

// Config returns the destination the Sink was made for.
func (s *Sink) Config() config.Syslog { return s.cfg }

// message is one datagram being sent, pooled with the function that writes
// it so that a Send allocates nothing.
type message struct {
	b     []byte
	err   error
	write func(fd uintptr) bool // m.writeTo, bound once
}

var messages = sync.Pool{New: func() any {
	m := &message{b: make([]byte, 0, 1024)}
	m.write = m.writeTo
	return m
}}

// writeTo writes the datagram with one write(2) and never waits for the
// socket to drain: a full socket (EAGAIN) loses the message.
func (m *message) writeTo(fd uintptr) bool {
	for {
		_, m.err = syscall.Write(int(fd), m.b)
		if m.err != syscall.EINTR {
			return true
		}
	}
}

// Send sends msg (without a trailing newline) at severity sev (0 to 7) as
// one message. It does not wait for a slow receiver: what the socket
// cannot take at once is lost and reported as an error. After Close, Send
// drops the message and returns ErrClosed without calling onError.
func (s *Sink) Send(sev int, msg []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	m := messages.Get().(*message)
	m.b = AppendMessage(m.b[:0], s.cfg, sev, time.Now(), msg)
	err := s.send(m)
	if cap(m.b) <= 64<<10 {
		m.err = nil
		messages.Put(m)
	}
	if err != nil {
		if s.closed.Load() {
			return ErrClosed
		}
		err = fmt.Errorf("send() to syslog server %q failed: %w", s.cfg.Server, err)
		s.report(err)
	}
	return err
}

// AppendMessage appends the datagram nginx sends for msg to b.
func AppendMessage(b []byte, cfg config.Syslog, sev int, now time.Time, msg []byte) []byte {
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(cfg.Facility*8+sev), 10)
	b = append(b, '>')
	b = now.AppendFormat(b, time.Stamp)
	b = append(b, ' ')
	if !cfg.NoHostname {
		b = append(b, hostname()...)
		b = append(b, ' ')
	}
	b = append(b, cfg.Tag...)
	b = append(b, ": "...)
	return append(b, msg...)
}

// send writes one datagram, connecting first if need be. A failed socket
// is closed so that the next message connects again, except when it only
// had no room (EAGAIN): the message is lost but the socket is fine.
func (s *Sink) send(m *message) error {
	c, err := s.connect()
	if err != nil {
		return err
	}
	if err = c.rc.Write(m.write); err == nil {
		err = m.err
	}
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		s.disconnect(c)
	}
	return err
}

// connect returns the socket, connecting it if there is none.
func (s *Sink) connect() (*conn, error) {
	if c := s.cur.Load(); c != nil {
		return c, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if c := s.cur.Load(); c != nil {
		return c, nil
	}
	nc, err := net.Dial(s.cfg.Network, s.cfg.Addr)
	if err != nil {
		return nil, err
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("%T has no file descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		nc.Close()
		return nil, err
	}
	c := &conn{c: nc, rc: rc}
	s.cur.Store(c)
	return c, nil
}

// disconnect closes c, and forgets it if it is still the Sink's socket.
func (s *Sink) disconnect(c *conn) {
	s.cur.CompareAndSwap(c, nil)
	c.c.Close()
}

// report passes err to onError unless it heard of one less than a second
// ago.
func (s *Sink) report(err error) {
	if s.onError == nil {
		return
	}
	now := time.Now().UnixNano()
	last := s.lastReport.Load()
	if now-last < int64(time.Second) || !s.lastReport.CompareAndSwap(last, now) {
		return
	}
	s.onError(err)
}

// Close closes the socket. Messages sent afterwards are dropped. Close is
// idempotent.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed.Store(true)
	if c := s.cur.Swap(nil); c != nil {
		return c.c.Close()
	}
	return nil
}
