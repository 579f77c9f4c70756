package h2

import (
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/gproxy/gproxy/proxy/nettest"
)

// TestPingLiveness: an upstream (Client-role) connection sends its
// liveness PING only after PingInterval without a frame from the server,
// and closes only when that PING has gone unanswered for PingInterval
// more, however often its read deadline fires early: every idle moment
// arms one idleGrace later, and streams the proxy resets make many such
// moments. (Counting those early deadlines as intervals closed a live
// connection whose PING answer was a little late: CI, TestAttacks.)
func TestPingLiveness(t *testing.T) {
	shortGrace(t)
	const interval = 500 * time.Millisecond
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pings := make(chan time.Time, 16)
	go func() { // the server: SETTINGS, then silence; it notes our PINGs
		nc, err := acceptClient(ln)
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		fr := http2.NewFramer(nc, nc)
		fr.WriteSettings()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
				pings <- time.Now()
			}
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	lim := DefaultLimits()
	lim.PingInterval = interval
	cc := NewConn(nc, nil, Client, lim, nopHandler{})
	defer cc.Close()
	go cc.Serve()
	select {
	case <-cc.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("no SETTINGS from the server")
	}
	heard := time.Now() // the server's last frame came before this

	// Streams opened and reset at once: each leaves the connection idle.
	for time.Since(heard) < interval*4/5 {
		s, err := cc.OpenStream(reqFields, false, discard{})
		if err != nil {
			t.Fatalf("%v after the server's SETTINGS: %v", time.Since(heard), err)
		}
		s.Reset(http2.ErrCodeCancel)
		time.Sleep(30 * time.Millisecond)
	}
	select {
	case p := <-pings:
		t.Fatalf("PING %v after the server's last frame, want none before PingInterval (%v)", p.Sub(heard), interval)
	default:
	}
	if err := cc.Err(); err != nil {
		t.Fatalf("closed %v after the server's last frame, before PingInterval: %v", time.Since(heard), err)
	}

	// The server stays silent: one PING, then the close.
	for end := time.Now().Add(5 * time.Second); cc.Err() == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("a server that does not answer PING was not closed within 5 s")
		}
	}
	closed := time.Since(heard)
	select {
	case p := <-pings:
		if p.Sub(heard) < interval {
			t.Errorf("PING %v after the server's last frame, want at least PingInterval (%v)", p.Sub(heard), interval)
		}
	default:
		t.Fatal("closed without sending a PING")
	}
	if closed < 2*interval {
		t.Errorf("closed %v after the server's last frame, want at least two PingIntervals (%v)", closed, 2*interval)
	}
}
