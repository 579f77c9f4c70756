package h2

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/proxy/nettest"
	"golang.org/x/net/http2"
)

// Frames before the peer's SETTINGS (RFC 9113 3.4): nginx serves a client
// that sends none first, and nginx-tests' backend sends its SETTINGS only
// after the proxy's first HEADERS.

// TestServerWithoutClientSettings: a client whose first frame after the
// preface is HEADERS (no SETTINGS at all) gets its response, with the
// initial settings standing for the ones it never sent.
func TestServerWithoutClientSettings(t *testing.T) {
	r := startRaw(t, DefaultLimits(), &replier{body: "hello"}, false)
	r.headers(1, true)
	hf := r.expect("response HEADERS", func(f http2.Frame) bool {
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			t.Fatalf("GOAWAY %v", ga.ErrCode)
		}
		_, ok := f.(*http2.MetaHeadersFrame)
		return ok
	}).(*http2.MetaHeadersFrame)
	if hf.StreamID != 1 || hf.PseudoValue("status") != "200" {
		t.Fatalf("HEADERS on stream %d, :status %q", hf.StreamID, hf.PseudoValue("status"))
	}
	df := r.expect("response DATA", func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok }).(*http2.DataFrame)
	if string(df.Data()) != "hello" || !df.StreamEnded() {
		t.Fatalf("DATA %q end=%v", df.Data(), df.StreamEnded())
	}
	// Its SETTINGS may still come, late, and apply.
	r.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	r.expect("SETTINGS ACK", func(f http2.Frame) bool {
		sf, ok := f.(*http2.SettingsFrame)
		return ok && sf.IsAck()
	})
	r.headers(3, true)
	r.expect("second response", func(f http2.Frame) bool {
		hf, ok := f.(*http2.MetaHeadersFrame)
		return ok && hf.StreamID == 3
	})
}

// TestServerPrefaceMustBeSettings: a server's first frame must still be
// SETTINGS; anything else is a PROTOCOL_ERROR.
func TestServerPrefaceMustBeSettings(t *testing.T) {
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		http2.NewFramer(nc, nil).WritePing(false, [8]byte{})
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, nc)
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc := NewConn(nc, nil, Client, DefaultLimits(), nopHandler{})
	defer cc.Close()
	done := make(chan error, 1)
	go func() { done <- cc.Serve() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "first frame is not SETTINGS") {
			t.Fatalf("Serve: %v, want first frame is not SETTINGS", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a server opening with PING was accepted")
	}
}

// respHandler records a Client-role stream's response headers.
type respHandler struct{ got chan *http2.MetaHeadersFrame }

func (h respHandler) HandleHeaders(_ *Stream, f *http2.MetaHeadersFrame) { h.got <- f }
func (h respHandler) HandleData(s *Stream, p []byte, _ bool)             { s.Credit(len(p)) }
func (h respHandler) HandleReset(*Stream, error)                         {}
func (h respHandler) HandleSent(*Stream, int)                            {}

// TestClientOpensBeforeServerSettings: a Client-role Conn opens its first
// stream at once, preface and SETTINGS first on the wire, with the server
// answering only once it has read that stream's HEADERS. Until the
// server's SETTINGS it takes that one stream; then the server's limit.
func TestClientOpensBeforeServerSettings(t *testing.T) {
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	order := make(chan []http2.FrameType, 1)
	release := make(chan struct{}) // the test has tried a second stream
	go func() {
		nc, err := acceptClient(ln)
		if err != nil {
			order <- nil
			return
		}
		defer nc.Close()
		fr := http2.NewFramer(nc, nc)
		var seen []http2.FrameType
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				order <- seen
				return
			}
			seen = append(seen, f.Header().Type)
			if hf, ok := f.(*http2.HeadersFrame); ok {
				if hf.StreamID != 1 {
					continue // the second stream, after our SETTINGS
				}
				order <- seen
				<-release
				// Only now our SETTINGS, then the response.
				fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 10})
				var hb []byte
				hb = appendStatus200(hb)
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb, EndStream: true, EndHeaders: true})
			}
		}
	}()
	cc := dialServing(t, ln.Addr().String())
	h := respHandler{got: make(chan *http2.MetaHeadersFrame, 2)}
	if _, err := cc.OpenStream(reqFields, true, h); err != nil {
		t.Fatalf("first stream before the server's SETTINGS: %v", err)
	}
	if _, err := cc.OpenStream(reqFields, true, h); err != ErrStreamLimit {
		t.Fatalf("second stream before the server's SETTINGS: %v, want ErrStreamLimit", err)
	}
	close(release)
	seen := <-order
	if len(seen) < 2 || seen[0] != http2.FrameSettings || seen[len(seen)-1] != http2.FrameHeaders {
		t.Fatalf("frames from the client before its HEADERS: %v, want SETTINGS first", seen)
	}
	select {
	case f := <-h.got:
		if f.PseudoValue("status") != "200" {
			t.Fatalf(":status %q", f.PseudoValue("status"))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no response")
	}
	select {
	case <-cc.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("Ready not closed after the server's SETTINGS")
	}
	if cc.Err() != nil {
		t.Fatal(cc.Err())
	}
	for i := 0; i < 10; i++ { // stream 1 is done; the server's limit, 10, applies
		if _, err := cc.OpenStream(reqFields, false, h); err != nil {
			t.Fatalf("stream %d after SETTINGS (limit 10): %v", i+1, err)
		}
	}
	if _, err := cc.OpenStream(reqFields, false, h); err != ErrStreamLimit {
		t.Fatalf("11th stream: %v, want ErrStreamLimit", err)
	}
}

// acceptClient accepts one connection on ln for a test playing the server
// and reads the client preface; the connection has a 5 s deadline.
func acceptClient(ln net.Listener) (net.Conn, error) {
	nc, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len(ClientPreface))
	if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != ClientPreface {
		nc.Close()
		return nil, errors.New("no client preface")
	}
	return nc, nil
}

// fakeServer plays the server for one client on ln: it reads the
// preface, sends an empty SETTINGS and hands each frame it reads to on
// until on returns false or the connection ends (deadline: life).
func fakeServer(ln net.Listener, life time.Duration, on func(nc net.Conn, fr *http2.Framer, f http2.Frame) bool) {
	nc, err := acceptClient(ln)
	if err != nil {
		return
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(life))
	fr := http2.NewFramer(nc, nc)
	fr.WriteSettings()
	for {
		f, err := fr.ReadFrame()
		if err != nil || !on(nc, fr, f) {
			return
		}
	}
}

// dialServing dials addr and serves a Client-role Conn on it, closed when
// the test ends.
func dialServing(t *testing.T, addr string) *Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cc := NewConn(nc, nil, Client, DefaultLimits(), nopHandler{})
	t.Cleanup(func() { cc.Close() })
	go cc.Serve()
	return cc
}

// appendStatus200 is an HPACK block holding :status 200 (static index 8).
func appendStatus200(b []byte) []byte { return append(b, 0x88) }

// resetHandler records how a Client-role stream ended.
type resetHandler struct{ err chan error }

func (h resetHandler) HandleHeaders(*Stream, *http2.MetaHeadersFrame) {}
func (h resetHandler) HandleData(s *Stream, p []byte, _ bool)         { s.Credit(len(p)) }
func (h resetHandler) HandleReset(_ *Stream, err error)               { h.err <- err }
func (h resetHandler) HandleSent(*Stream, int)                        {}

// TestClientServerClosesBeforeSettings: a server that closes before its
// SETTINGS took none of the streams opened early: they end with
// REFUSED_STREAM (so a proxy may send them elsewhere), as a failed
// connect would.
func TestClientServerClosesBeforeSettings(t *testing.T) {
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The server closes only once the stream is open: closing at once
	// could beat OpenStream, which then (rightly) finds the connection
	// closed.
	opened := make(chan struct{})
	go func() {
		nc, err := acceptClient(ln)
		if err != nil {
			return
		}
		select {
		case <-opened:
		case <-time.After(5 * time.Second):
		}
		nc.Close()
	}()
	cc := dialServing(t, ln.Addr().String())
	h := resetHandler{err: make(chan error, 1)}
	if _, err := cc.OpenStream(reqFields, true, h); err != nil {
		t.Fatal(err)
	}
	close(opened)
	select {
	case err := <-h.err:
		se, ok := err.(*StreamError)
		if !ok || !se.Conn || !se.Remote || se.Code != http2.ErrCodeRefusedStream {
			t.Fatalf("stream ended with %#v, want a connection close with REFUSED_STREAM", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream not reset")
	}
}
