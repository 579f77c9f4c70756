//go:build linux

package h2

import (
	"errors"
	"io"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// isParked reports whether c waits in the idle poller.
func (c *Conn) isParked() bool {
	idlePoller.mu.Lock()
	defer idlePoller.mu.Unlock()
	return c.parked
}

// shortGrace makes connections park after 20 ms of idleness for the test.
func shortGrace(t *testing.T) {
	old := idleGrace.Swap(int64(20 * time.Millisecond))
	t.Cleanup(func() { idleGrace.Store(old) })
}

func waitParked(t *testing.T, c *Conn) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !c.isParked(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the idle connection was not parked")
		}
	}
}

// expectEOF reads until the server closes the connection.
func (r *rawClient) expectEOF() {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := r.fr.ReadFrame(); err != nil {
			if !errors.Is(err, io.EOF) {
				r.t.Fatalf("want EOF, got %v", err)
			}
			return
		}
	}
}

// TestParkedConn: an idle connection on a TCP socket is parked (no
// goroutine) once idleGrace has passed, and input brings it back: it
// serves the next stream and parks again; GOAWAY still reaches a parked
// connection's client, and the connection ends.
func TestParkedConn(t *testing.T) {
	shortGrace(t)
	r := newRaw(t, DefaultLimits(), &replier{body: "hi"})
	for _, id := range []uint32{1, 3} {
		r.headers(id, true)
		r.expect("response", func(f http2.Frame) bool {
			d, ok := f.(*http2.DataFrame)
			return ok && d.StreamID == id && d.StreamEnded()
		})
		waitParked(t, r.srv)
	}
	r.srv.GoAway()
	if last := r.expectGoAway(http2.ErrCodeNo); last != 3 {
		t.Errorf("GOAWAY last stream %d, want 3", last)
	}
}

// TestParkedIdleTimeout: keepalive_timeout closes a parked connection.
func TestParkedIdleTimeout(t *testing.T) {
	shortGrace(t)
	lim := DefaultLimits()
	lim.IdleTimeout = 300 * time.Millisecond
	r := newRaw(t, lim, &replier{})
	waitParked(t, r.srv)
	start := time.Now()
	r.expectEOF()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %v idle, want about 300ms", d)
	}
}

// closeSpy records HandleClose.
type closeSpy struct {
	replier
	closed chan error
}

func (h *closeSpy) HandleClose(_ *Conn, err error) { h.closed <- err }

// TestParkedClose: a parked connection ends as a busy one does, whether
// the server closes it (the handler hears HandleClose and the client sees
// the socket close) or the client does.
func TestParkedClose(t *testing.T) {
	for _, tc := range []struct {
		name   string
		byPeer bool
	}{{"server", false}, {"client", true}} {
		t.Run(tc.name, func(t *testing.T) {
			shortGrace(t)
			h := &closeSpy{closed: make(chan error, 1)}
			r := newRaw(t, DefaultLimits(), h)
			waitParked(t, r.srv)
			if tc.byPeer {
				r.nc.Close()
			} else {
				r.srv.Close()
			}
			select {
			case <-h.closed:
			case <-time.After(5 * time.Second):
				t.Fatalf("no HandleClose after the %s closed a parked connection", tc.name)
			}
			if !tc.byPeer {
				r.expectEOF()
			}
		})
	}
}
