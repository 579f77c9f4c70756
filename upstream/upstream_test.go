package upstream

import (
	"context"
	"errors"
	"github.com/gproxy/gproxy/proxy/nettest"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/h2"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func group(t *testing.T, servers ...config.UpstreamServer) *Group {
	t.Helper()
	u := &config.Upstream{Name: "up", Servers: servers, Pos: config.Pos{File: "x.conf", Line: 3}}
	g, err := NewGroup(u, NewSet(nil, h2.DefaultLimits()), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestSmoothWeightedRoundRobin(t *testing.T) {
	for _, tc := range []struct {
		name    string
		servers []config.UpstreamServer
		want    string
	}{
		{"nginx 5,1,1", []config.UpstreamServer{{Address: "10.0.0.1:1", Weight: 5}, {Address: "10.0.0.2:1", Weight: 1}, {Address: "10.0.0.3:1", Weight: 1}}, "aabacaa"},
		{"equal", []config.UpstreamServer{{Address: "10.0.0.1:1", Weight: 1}, {Address: "10.0.0.2:1", Weight: 1}}, "ababab"},
		{"down skipped", []config.UpstreamServer{{Address: "10.0.0.1:1", Weight: 1}, {Address: "10.0.0.2:1", Weight: 1, Down: true}, {Address: "10.0.0.3:1", Weight: 2}}, "caccacca"},
		{"gcd reduced", []config.UpstreamServer{{Address: "10.0.0.1:1", Weight: 10}, {Address: "10.0.0.2:1", Weight: 20}}, "babbab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := group(t, tc.servers...)
			var b strings.Builder
			for range len(tc.want) {
				p, err := g.Pick(&StreamInfo{})
				if err != nil {
					t.Fatal(err)
				}
				b.WriteByte('a' + p.Addr[7] - '1')
				p.Done(Outcome{})
			}
			if b.String() != tc.want {
				t.Fatalf("order %s, want %s", b.String(), tc.want)
			}
		})
	}
}

func TestAllDown(t *testing.T) {
	g := group(t, config.UpstreamServer{Address: "10.0.0.1:1", Weight: 1, Down: true})
	if _, err := g.Pick(&StreamInfo{}); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("got %v", err)
	}
}

// TestUnsupported: a server line with resolve (re-resolved names are not
// built yet) is an error naming FILE:LINE, never a group that silently
// resolves once.
// TestResolveServerWaitsForDNS: a server marked resolve is not resolved
// at load; its peers come from DNS once the group starts (dynamic.go).
func TestResolveServerWaitsForDNS(t *testing.T) {
	set := NewSet(nil, h2.DefaultLimits())
	u := &config.Upstream{Name: "b", Balance: config.Balance{Method: "round_robin"},
		Servers: []config.UpstreamServer{{Address: "10.0.0.1:1", Resolve: true, Pos: config.Pos{File: "n.conf", Line: 9}}}}
	g, err := NewGroup(u, set, GroupOptions{})
	if err != nil || len(g.Peers()) != 0 {
		t.Errorf("NewGroup = %v peers, %v", len(g.Peers()), err)
	}
}

// h2Backend is a minimal HTTP/2 server built on the codec: it answers each
// stream with a trailers-only 200 after a delay, and can announce a stream
// limit or GOAWAY.
type h2Backend struct {
	ln      net.Listener
	maxConc uint32
	delay   time.Duration
	mu      sync.Mutex
	conns   []*h2.Conn
	accepts int
}

func startH2Backend(t *testing.T, maxConc uint32, delay time.Duration) *h2Backend {
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	b := &h2Backend{ln: ln, maxConc: maxConc, delay: delay}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, len(h2.ClientPreface))
			if _, err := nc.Read(buf); err != nil {
				nc.Close()
				continue
			}
			lim := h2.DefaultLimits()
			lim.MaxConcurrentStreams = maxConc
			c := h2.NewConn(nc, nil, h2.Server, lim, b)
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.accepts++
			b.mu.Unlock()
			go c.Serve()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.conns {
			c.Close()
		}
	})
	return b
}

func (b *h2Backend) HandleStream(s *h2.Stream, f *http2.MetaHeadersFrame) h2.StreamHandler {
	time.AfterFunc(b.delay, func() {
		s.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "grpc-status", Value: "0"}}, true)
	})
	return nil
}
func (b *h2Backend) HandleGoAway(*h2.Conn)       {}
func (b *h2Backend) HandleClose(*h2.Conn, error) {}

// recorder is a stream handler that records the response.
type recorder struct {
	done chan error
}

func (r *recorder) HandleHeaders(s *h2.Stream, f *http2.MetaHeadersFrame) {
	if f.StreamEnded() {
		r.done <- nil
	}
}
func (r *recorder) HandleData(s *h2.Stream, p []byte, end bool) { s.Credit(len(p)) }
func (r *recorder) HandleReset(s *h2.Stream, err error)         { r.done <- err }
func (r *recorder) HandleSent(*h2.Stream, int)                  {}

// open opens one stream through the pool, waiting for a dial if needed.
func open(t *testing.T, p *Pool, r *recorder) error {
	fields := []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: "/x"}, {Name: ":authority", Value: "up"}}
	errc := make(chan error, 1)
	var retry func(c *h2.Conn, err error)
	retry = func(c *h2.Conn, err error) {
		if err != nil {
			errc <- err
			return
		}
		if _, err := c.OpenStream(fields, true, r); err != nil {
			if p.Open(fields, true, r, time.Second, retry) != nil {
				errc <- nil
			}
			return
		}
		errc <- nil
	}
	if p.Open(fields, true, r, time.Second, retry) != nil {
		return nil
	}
	select {
	case err := <-errc:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("open timed out")
		return nil
	}
}

// waitSettings waits until every pooled connection has the server's
// SETTINGS.
func waitSettings(t *testing.T, p *Pool) {
	t.Helper()
	p.mu.Lock()
	conns := append([]*h2.Conn(nil), p.conns...)
	p.mu.Unlock()
	for _, c := range conns {
		select {
		case <-c.Ready():
		case <-time.After(5 * time.Second):
			t.Fatal("no SETTINGS from the server")
		}
	}
}

func testPool(addr string) *Pool {
	set := NewSet(nil, h2.DefaultLimits())
	return set.pool(&config.Upstream{Name: "up", Keepalive: 16}, "tcp", addr, GroupOptions{})
}

// TestPoolWithoutKeepalive: without `keepalive` streams open together
// share a connection, and a connection with no stream left is closed, as
// nginx keeps no idle connection: calls one after another each dial.
func TestPoolWithoutKeepalive(t *testing.T) {
	addr, accepts := lateSettingsBackend(t)
	p := NewSet(nil, h2.DefaultLimits()).pool(&config.Upstream{Name: "up"}, "tcp", addr, GroupOptions{})
	defer p.Close()
	r := &recorder{done: make(chan error, 2)}
	for i := 0; i < 2; i++ {
		if err := open(t, p, r); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-r.done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no response")
		}
		time.Sleep(50 * time.Millisecond) // the idle connection closes
	}
	if n := accepts(); n != 2 {
		t.Fatalf("%d connections for 2 calls one after the other, want 2", n)
	}
}

// TestPoolMultiplexes: streams share one connection until the server's
// SETTINGS_MAX_CONCURRENT_STREAMS is reached; then a second is dialed.
func TestPoolMultiplexes(t *testing.T) {
	b := startH2Backend(t, 4, 300*time.Millisecond)
	p := testPool(b.ln.Addr().String())
	defer p.Close()
	r := &recorder{done: make(chan error, 16)}
	for i := 0; i < 4; i++ {
		if err := open(t, p, r); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.Conns(); n != 1 {
		t.Fatalf("%d connections for 4 streams with limit 4, want 1", n)
	}
	if err := open(t, p, r); err != nil {
		t.Fatal(err)
	}
	if n := p.Conns(); n != 2 {
		t.Fatalf("%d connections for 5 streams with limit 4, want 2", n)
	}
	for i := 0; i < 5; i++ {
		select {
		case err := <-r.done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("response timed out")
		}
	}
}

// TestPoolTryOpen: TryOpen uses a pooled connection with room and
// otherwise returns nil without dialing.
func TestPoolTryOpen(t *testing.T) {
	b := startH2Backend(t, 2, 300*time.Millisecond)
	p := testPool(b.ln.Addr().String())
	defer p.Close()
	fields := []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: "/x"}, {Name: ":authority", Value: "up"}}
	r := &recorder{done: make(chan error, 4)}
	if s := p.TryOpen(fields, true, r); s != nil {
		t.Fatal("TryOpen on an empty pool opened a stream")
	}
	if n := p.Conns(); n != 0 {
		t.Fatalf("TryOpen dialed: %d connections", n)
	}
	if err := open(t, p, r); err != nil {
		t.Fatal(err)
	}
	waitSettings(t, p) // until they arrive the connection takes one stream
	if s := p.TryOpen(fields, true, r); s == nil {
		t.Fatal("TryOpen found no room on a connection with 1 of 2 streams")
	}
	if s := p.TryOpen(fields, true, r); s != nil {
		t.Fatal("TryOpen went past the server's stream limit")
	}
	if n := p.Conns(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	for i := 0; i < 2; i++ {
		select {
		case err := <-r.done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("response timed out")
		}
	}
}

// TestPoolGoAway: after the server's GOAWAY, new streams go to a new
// connection and the old one closes once drained.
func TestPoolGoAway(t *testing.T) {
	b := startH2Backend(t, 100, 0)
	p := testPool(b.ln.Addr().String())
	defer p.Close()
	r := &recorder{done: make(chan error, 16)}
	if err := open(t, p, r); err != nil {
		t.Fatal(err)
	}
	<-r.done
	b.mu.Lock()
	first := b.conns[0]
	b.mu.Unlock()
	first.GoAway()
	deadline := time.Now().Add(5 * time.Second)
	for p.Conns() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if p.Conns() != 0 {
		t.Fatal("GOAWAY'd idle connection still pooled")
	}
	if err := open(t, p, r); err != nil {
		t.Fatal(err)
	}
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	accepts := b.accepts
	b.mu.Unlock()
	if accepts != 2 {
		t.Fatalf("%d connections accepted, want 2", accepts)
	}
}

func TestPoolDialFailure(t *testing.T) {
	ln, _ := nettest.Listen("tcp", "127.0.0.1")
	addr := ln.Addr().String()
	ln.Close()
	p := testPool(addr)
	err := open(t, p, &recorder{done: make(chan error, 1)})
	var de *DialError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "connect to "+addr+" failed: connection refused") {
		t.Fatalf("got %v", err)
	}
}

func TestPoolDialTimeout(t *testing.T) {
	set := NewSet(func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, h2.DefaultLimits())
	p := set.pool(&config.Upstream{Name: "up"}, "tcp", "127.0.0.1:9", GroupOptions{})
	fields := []hpack.HeaderField{{Name: ":method", Value: "POST"}}
	errc := make(chan error, 1)
	p.Open(fields, true, &recorder{}, 50*time.Millisecond, func(_ *h2.Conn, err error) { errc <- err })
	select {
	case err := <-errc:
		var de *DialError
		if !errors.As(err, &de) || !de.Timeout {
			t.Fatalf("got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no timeout")
	}
}

func newTestSet() *Set { return NewSet(nil, h2.DefaultLimits()) }
