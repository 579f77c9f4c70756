package h2

import (
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/gproxy/gproxy/proxy/nettest"
)

// TestPingLiveness: an upstream (Client-role) connection sends its
// liveness PING only while a stream is open and only after PingInterval
// without a frame from the server, and closes only when that PING has
// gone unanswered for PingTimeout, however often its read deadline fires
// early: every idle moment arms one idleGrace later, and streams the
// proxy resets make many such moments. (Counting those early deadlines as
// intervals closed a live connection whose PING answer was a little late:
// CI, TestAttacks.) An idle connection sends none: gRPC servers count
// those against the client.
func TestPingLiveness(t *testing.T) {
	shortGrace(t)
	const interval = 500 * time.Millisecond
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pings := make(chan time.Time, 16)
	// The server: SETTINGS, then silence; it notes our PINGs.
	go fakeServer(ln, 10*time.Second, func(_ net.Conn, _ *http2.Framer, f http2.Frame) bool {
		if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
			pings <- time.Now()
		}
		return true
	})
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	lim := DefaultLimits()
	lim.PingInterval, lim.PingTimeout = interval, interval*3/5
	// A PING may come only PingInterval after the server's last frame,
	// which comes after start: bounds measured from start hold however
	// late this goroutine sees that frame.
	start := time.Now()
	cc := NewConn(nc, nil, Client, lim, nopHandler{})
	defer cc.Close()
	go cc.Serve()
	select {
	case <-cc.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("no SETTINGS from the server")
	}
	// Streams opened and reset at once: each leaves the connection idle.
	for time.Since(start) < interval*4/5 {
		s, err := cc.OpenStream(reqFields, false, discard{})
		if err != nil {
			t.Fatalf("%v after the connection started: %v", time.Since(start), err)
		}
		s.Reset(http2.ErrCodeCancel)
		time.Sleep(30 * time.Millisecond)
	}
	select {
	case p := <-pings:
		t.Fatalf("PING %v after the connection started, want none before PingInterval (%v)", p.Sub(start), interval)
	default:
	}
	if err := cc.Err(); err != nil {
		t.Fatalf("closed %v after the connection started, before PingInterval: %v", time.Since(start), err)
	}

	// Idle, past PingInterval: no PING.
	time.Sleep(interval)
	select {
	case p := <-pings:
		t.Fatalf("PING on a connection without streams, %v after the connection started", p.Sub(start))
	default:
	}
	// A stream stays open and the server silent: one PING, then the close.
	if _, err := cc.OpenStream(reqFields, false, discard{}); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); cc.Err() == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("a server that does not answer PING was not closed within 5 s")
		}
	}
	closed := time.Since(start)
	select {
	case p := <-pings:
		if p.Sub(start) < interval {
			t.Errorf("PING %v after the connection started, want at least PingInterval (%v)", p.Sub(start), interval)
		}
	default:
		t.Fatal("closed without sending a PING")
	}
	if closed < interval+lim.PingTimeout {
		t.Errorf("closed %v after the connection started, want at least PingInterval + PingTimeout (%v)", closed, interval+lim.PingTimeout)
	}
}
