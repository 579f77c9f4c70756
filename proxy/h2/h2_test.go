package h2

import (
	"errors"
	"github.com/gproxy/gproxy/proxy/nettest"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// sink is a server handler that records DATA and credits only on demand.
type sink struct {
	mu     sync.Mutex
	got    int
	s      *Stream
	credit bool
	data   chan int
}

func (k *sink) HandleStream(s *Stream, f *http2.MetaHeadersFrame) StreamHandler {
	k.mu.Lock()
	k.s = s
	k.mu.Unlock()
	return k
}
func (k *sink) HandleGoAway(*Conn)                             {}
func (k *sink) HandleClose(*Conn, error)                       {}
func (k *sink) HandleHeaders(*Stream, *http2.MetaHeadersFrame) {}
func (k *sink) HandleData(s *Stream, p []byte, end bool) {
	k.mu.Lock()
	k.got += len(p)
	if k.credit {
		s.Credit(len(p))
	}
	k.mu.Unlock()
	k.data <- len(p)
}
func (k *sink) HandleReset(*Stream, error) {}
func (k *sink) HandleSent(*Stream, int)    {}

type nopHandler struct{}

func (nopHandler) HandleStream(s *Stream, _ *http2.MetaHeadersFrame) StreamHandler { return nil }
func (nopHandler) HandleGoAway(*Conn)                                              {}
func (nopHandler) HandleClose(*Conn, error)                                        {}
func (nopHandler) HandleHeaders(*Stream, *http2.MetaHeadersFrame)                  {}
func (nopHandler) HandleData(*Stream, []byte, bool)                                {}
func (nopHandler) HandleReset(*Stream, error)                                      {}
func (nopHandler) HandleSent(*Stream, int)                                         {}

// pair connects a Client-role and a Server-role Conn over loopback TCP.
func pair(t *testing.T, srvLim Limits, srv ConnHandler, wrap func(net.Conn) net.Conn) (*Conn, *Conn) {
	t.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- nc
	}()
	cnc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	snc := <-acc
	buf := make([]byte, len(ClientPreface))
	go func() { cnc.Write([]byte(ClientPreface)) }()
	if _, err := snc.Read(buf); err != nil || string(buf) != ClientPreface {
		t.Fatalf("preface: %v", err)
	}
	if wrap != nil {
		cnc = wrap(cnc)
	}
	sc := NewConn(snc, nil, Server, srvLim, srv)
	cc := NewConn(&skipPreface{Conn: cnc}, nil, Client, DefaultLimits(), nopHandler{})
	go sc.Serve()
	go cc.Serve()
	t.Cleanup(func() { cc.Close(); sc.Close() })
	select {
	case <-cc.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("no SETTINGS")
	}
	return cc, sc
}

// skipPreface drops the client preface the Client role writes, since pair
// already sent it.
type skipPreface struct {
	net.Conn
	skipped bool
}

func (s *skipPreface) Write(p []byte) (int, error) {
	if !s.skipped && len(p) >= len(ClientPreface) && string(p[:len(ClientPreface)]) == ClientPreface {
		s.skipped = true
		n, err := s.Conn.Write(p[len(ClientPreface):])
		return n + len(ClientPreface), err
	}
	return s.Conn.Write(p)
}

var reqFields = []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
	{Name: ":path", Value: "/x"}, {Name: ":authority", Value: "a"}}

// TestFlowControlBoundsBuffering: a receiver that does not pass data on
// (no Credit) gets exactly one stream window, and the sender keeps the
// rest queued; credit releases it.
func TestFlowControlBoundsBuffering(t *testing.T) {
	k := &sink{data: make(chan int, 1024)}
	lim := DefaultLimits()
	cc, _ := pair(t, lim, k, nil)
	s, err := cc.OpenStream(reqFields, false, nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	const total = 200 << 10
	if err := s.WriteData(make([]byte, total), true); err != nil {
		t.Fatal(err)
	}
	got := 0
	timeout := time.After(5 * time.Second)
	for got < int(lim.StreamWindow) {
		select {
		case n := <-k.data:
			got += n
		case <-timeout:
			t.Fatalf("got %d bytes, want the window %d", got, lim.StreamWindow)
		}
	}
	select {
	case n := <-k.data:
		t.Fatalf("received %d bytes beyond the stream window", n)
	case <-time.After(100 * time.Millisecond):
	}
	k.mu.Lock()
	k.credit = true
	k.s.Credit(k.got)
	k.mu.Unlock()
	for got < total {
		select {
		case n := <-k.data:
			got += n
		case <-timeout:
			t.Fatalf("got %d of %d bytes after credit", got, total)
		}
	}
}

// gateConn blocks the first Write until released and counts writes.
type gateConn struct {
	net.Conn
	gate   chan struct{}
	armed  atomic.Bool
	writes atomic.Int32
}

func (g *gateConn) Write(p []byte) (int, error) {
	g.writes.Add(1)
	if g.armed.CompareAndSwap(true, false) {
		<-g.gate
	}
	return g.Conn.Write(p)
}

// TestWritesCoalesce: frames of many streams queued while the socket is
// busy leave in one write.
func TestWritesCoalesce(t *testing.T) {
	g := &gateConn{gate: make(chan struct{})}
	cc, _ := pair(t, DefaultLimits(), &sink{data: make(chan int, 1024)}, func(c net.Conn) net.Conn { g.Conn = c; return g })
	time.Sleep(50 * time.Millisecond) // let the handshake writes finish
	g.armed.Store(true)
	if _, err := cc.OpenStream(reqFields, true, nopHandler{}); err != nil {
		t.Fatal(err)
	}
	for g.writes.Load() == 0 { // the writer is now blocked in Write
		time.Sleep(time.Millisecond)
	}
	before := g.writes.Load()
	for i := 0; i < 50; i++ {
		if _, err := cc.OpenStream(reqFields, true, nopHandler{}); err != nil {
			t.Fatal(err)
		}
	}
	close(g.gate)
	deadline := time.Now().Add(5 * time.Second)
	for cc.writingNow() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := g.writes.Load() - before; n > 2 { // the batch, plus perhaps a late SETTINGS ack
		t.Fatalf("50 streams' HEADERS took %d writes, want 1 (2 at most)", n)
	}
}

func (c *Conn) writingNow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writing
}

// TestStreamLimit: the client role honours the server's
// SETTINGS_MAX_CONCURRENT_STREAMS (http2_max_concurrent_streams).
func TestStreamLimit(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxConcurrentStreams = 2
	cc, _ := pair(t, lim, &sink{data: make(chan int, 16)}, nil)
	for i := 0; i < 2; i++ {
		if _, err := cc.OpenStream(reqFields, false, nopHandler{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cc.OpenStream(reqFields, false, nopHandler{}); !errors.Is(err, ErrStreamLimit) {
		t.Fatalf("third stream: %v, want ErrStreamLimit", err)
	}
}

// TestDefaultsAreNginx pins the limits to nginx's defaults.
func TestDefaultsAreNginx(t *testing.T) {
	l := DefaultLimits()
	if l.MaxConcurrentStreams != 128 || l.ChunkSize != 8<<10 || l.MaxHeaderListSize != 32<<10 ||
		l.IdleTimeout != 75*time.Second || l.MaxRequests != 1000 {
		t.Fatalf("%+v", l)
	}
}
