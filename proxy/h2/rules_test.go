package h2

import (
	"bytes"
	"errors"
	"github.com/gproxy/gproxy/proxy/nettest"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Tests of RFC 9113 rules that h2spec checks, one per rule, driven by a raw
// client (a bare http2.Framer) against a Server-role Conn over loopback.

// rawClient is a hand-driven HTTP/2 client.
type rawClient struct {
	t    *testing.T
	nc   net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	srv  *Conn
	// served is closed when the server's Serve has returned: its
	// connection has ended and its reader's fields are settled.
	served chan struct{}
}

// newRaw starts a Server-role Conn with lim and h and does the handshake,
// sending settings in the client's SETTINGS.
func newRaw(t *testing.T, lim Limits, h ConnHandler, settings ...http2.Setting) *rawClient {
	t.Helper()
	return startRaw(t, lim, h, true, settings...)
}

// rawDialer dials startRaw's client connection (tests that need a small
// receive buffer set it before the connection exists: a buffer shrunk
// later stalls TCP).
var rawDialer net.Dialer

// startRaw is newRaw; withSettings false sends no SETTINGS after the
// preface (and no ACK of the server's), as nginx's test client does.
func startRaw(t *testing.T, lim Limits, h ConnHandler, withSettings bool, settings ...http2.Setting) *rawClient {
	t.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvc := make(chan *Conn, 1)
	served := make(chan struct{})
	go func() {
		defer close(served)
		nc, err := ln.Accept()
		if err != nil {
			srvc <- nil
			return
		}
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, len(ClientPreface))
		if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != ClientPreface {
			nc.Close()
			srvc <- nil
			return
		}
		nc.SetReadDeadline(time.Time{})
		c := NewConn(nc, nil, Server, lim, h)
		srvc <- c
		c.Serve()
	}()
	nc, err := rawDialer.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := &rawClient{t: t, nc: nc, fr: http2.NewFramer(nc, nc), served: served}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.enc = hpack.NewEncoder(&r.hbuf)
	t.Cleanup(func() { nc.Close() })
	io.WriteString(nc, ClientPreface)
	if withSettings {
		r.fr.WriteSettings(settings...)
	}
	r.srv = <-srvc
	if r.srv == nil {
		t.Fatal("server did not start")
	}
	t.Cleanup(func() { r.srv.Close() })
	r.expect("server SETTINGS", func(f http2.Frame) bool {
		sf, ok := f.(*http2.SettingsFrame)
		return ok && !sf.IsAck()
	})
	if withSettings {
		r.fr.WriteSettingsAck()
	}
	return r
}

// headers sends a request header block on stream id.
func (r *rawClient) headers(id uint32, end bool, extra ...hpack.HeaderField) {
	r.hbuf.Reset()
	for _, f := range append(append([]hpack.HeaderField(nil), reqFields...), extra...) {
		r.enc.WriteField(f)
	}
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.hbuf.Bytes(),
		EndStream: end, EndHeaders: true}); err != nil {
		r.t.Fatal(err)
	}
}

// expect reads frames until match accepts one, failing on EOF or after 5s.
func (r *rawClient) expect(what string, match func(http2.Frame) bool) http2.Frame {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

// expectRST waits for RST_STREAM on id with code.
func (r *rawClient) expectRST(id uint32, code http2.ErrCode) {
	r.t.Helper()
	f := r.expect("RST_STREAM", func(f http2.Frame) bool {
		rst, ok := f.(*http2.RSTStreamFrame)
		return ok && rst.StreamID == id
	}).(*http2.RSTStreamFrame)
	if f.ErrCode != code {
		r.t.Fatalf("RST_STREAM %v, want %v", f.ErrCode, code)
	}
}

// expectGoAway waits for GOAWAY with code, then for the connection to end;
// it returns the GOAWAY's last stream id
// with EOF (not a reset: the server lingers).
func (r *rawClient) expectGoAway(code http2.ErrCode) (lastStreamID uint32) {
	r.t.Helper()
	f := r.expect("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if f.ErrCode != code {
		r.t.Fatalf("GOAWAY %v, want %v", f.ErrCode, code)
	}
	last := f.LastStreamID
	for {
		_, err := r.fr.ReadFrame()
		if errors.Is(err, io.EOF) {
			return last
		}
		if err != nil {
			r.t.Fatalf("after GOAWAY: %v, want EOF", err)
		}
	}
}

// replier answers each stream at once with a complete response (headers
// and body), without waiting for the request to end, as `return` does.
type replier struct {
	body   string
	silent bool        // send no response at all
	got    chan string // request bodies, when the stream ends normally
}

func (h *replier) HandleStream(s *Stream, f *http2.MetaHeadersFrame) StreamHandler {
	st := &replyStream{h: h}
	s.SetHandler(st)
	if h.silent {
		return st
	}
	s.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "200"}}, h.body == "")
	if h.body != "" {
		s.WriteData([]byte(h.body), true)
	}
	return st
}
func (h *replier) HandleGoAway(*Conn)       {}
func (h *replier) HandleClose(*Conn, error) {}

type replyStream struct {
	h   *replier
	buf strings.Builder
}

func (s *replyStream) HandleHeaders(*Stream, *http2.MetaHeadersFrame) {}
func (s *replyStream) HandleData(st *Stream, p []byte, end bool) {
	s.buf.Write(p)
	st.Credit(len(p))
	if end && s.h.got != nil {
		s.h.got <- s.buf.String()
	}
}
func (s *replyStream) HandleReset(*Stream, error) {}
func (s *replyStream) HandleSent(*Stream, int)    {}

// TestLargeFrames: a client may send frames up to the advertised
// SETTINGS_MAX_FRAME_SIZE (the stream window or header list limit, 64
// KiB by default, where nginx allows 2^24-1); the codec gets them in pieces
// of at most 16 KiB (split.go) with the same data, padding counted, and
// header block. Unknown frame types are ignored; other frames over 16 KiB
// and any frame over the advertised size are a FRAME_SIZE_ERROR (RFC 9113
// 4.2, 5.5).
func TestLargeFrames(t *testing.T) {
	body := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + i%26)
		}
		return b
	}
	wantBody := func(t *testing.T, got chan string, want []byte) {
		t.Helper()
		select {
		case b := <-got:
			if b != string(want) {
				t.Fatalf("got %d bytes, want %d (equal: %v)", len(b), len(want), b == string(want))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("request body not delivered")
		}
	}
	t.Run("DATA", func(t *testing.T) {
		got := make(chan string, 1)
		r := newRaw(t, DefaultLimits(), &replier{got: got})
		r.headers(1, false)
		b := body(40000)
		r.fr.WriteData(1, true, b)
		wantBody(t, got, b)
	})
	t.Run("DATA padded", func(t *testing.T) {
		got := make(chan string, 1)
		lim := DefaultLimits()
		lim.StreamWindow = 1 << 17
		r := newRaw(t, lim, &replier{got: got})
		r.headers(1, false)
		b := body(16380) // with the padding, the data ends in the last piece
		r.fr.WriteDataPadded(1, false, b, make([]byte, 200))
		b2 := body(50000)
		r.fr.WriteDataPadded(1, true, b2, make([]byte, 255))
		wantBody(t, got, append(b, b2...))
		// Padding is counted by flow control: all of it comes back.
		var back uint32
		r.expect("WINDOW_UPDATE for all", func(f http2.Frame) bool {
			if wu, ok := f.(*http2.WindowUpdateFrame); ok && wu.StreamID == 0 {
				back += wu.Increment
			}
			return back >= uint32(1+len(b)+200+1+len(b2)+255)
		})
	})
	t.Run("HEADERS", func(t *testing.T) {
		hs := &bigSpy{got: make(chan string, 1)}
		r := newRaw(t, DefaultLimits(), hs)
		big := hpack.HeaderField{Name: "x-big", Value: strings.Repeat("~", 20000)} // no shorter in Huffman
		r.hbuf.Reset()
		for _, f := range append(reqFields, big) {
			r.enc.WriteField(f)
		}
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.hbuf.Bytes(), EndStream: true, EndHeaders: false,
			PadLength: 100, Priority: http2.PriorityParam{Weight: 20}})
		r.fr.WriteContinuation(1, true, nil)
		select {
		case v := <-hs.got:
			if v != big.Value {
				t.Fatalf("x-big: %d bytes", len(v))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no stream")
		}
	})
	t.Run("unknown type", func(t *testing.T) {
		got := make(chan string, 1)
		r := newRaw(t, DefaultLimits(), &replier{got: got})
		r.fr.WriteRawFrame(0x42, 0, 0, body(30000))
		r.headers(1, false)
		r.fr.WriteData(1, true, []byte("after"))
		wantBody(t, got, []byte("after"))
	})
	t.Run("over the advertised size", func(t *testing.T) {
		r := newRaw(t, DefaultLimits(), &replier{})
		r.headers(1, false)
		r.fr.WriteData(1, true, body(int(maxFrameSize(DefaultLimits()))+1))
		r.expectGoAway(http2.ErrCodeFrameSize)
	})
	t.Run("SETTINGS", func(t *testing.T) {
		r := newRaw(t, DefaultLimits(), &replier{})
		r.fr.WriteRawFrame(http2.FrameSettings, 0, 0, make([]byte, 6*3000))
		r.expectGoAway(http2.ErrCodeFrameSize)
	})
}

// bigSpy reports the x-big field of each new stream.
type bigSpy struct{ got chan string }

func (h *bigSpy) HandleStream(s *Stream, f *http2.MetaHeadersFrame) StreamHandler {
	for _, hf := range f.RegularFields() {
		if hf.Name == "x-big" {
			h.got <- hf.Value
		}
	}
	return nil
}
func (h *bigSpy) HandleGoAway(*Conn)       {}
func (h *bigSpy) HandleClose(*Conn, error) {}

// TestSelfDependency: a stream depending on itself is a stream
// PROTOCOL_ERROR, in HEADERS or PRIORITY (RFC 7540 5.3.1; h2spec
// http2/5.3.1).
func TestSelfDependency(t *testing.T) {
	r := newRaw(t, DefaultLimits(), &replier{})
	r.hbuf.Reset()
	for _, f := range reqFields {
		r.enc.WriteField(f)
	}
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.hbuf.Bytes(), EndStream: true, EndHeaders: true,
		Priority: http2.PriorityParam{StreamDep: 1, Weight: 10}})
	r.expectRST(1, http2.ErrCodeProtocol)
	r.fr.WritePriority(3, http2.PriorityParam{StreamDep: 3, Weight: 10})
	r.expectRST(3, http2.ErrCodeProtocol)
}

// TestWindowOverflowAfterResponse: WINDOW_UPDATEs taking a stream window
// past 2^31-1 are a stream FLOW_CONTROL_ERROR, also once the response is
// complete and the request is not (half-closed local, as after `return`;
// h2spec http2/6.9.1).
func TestWindowOverflowAfterResponse(t *testing.T) {
	r := newRaw(t, DefaultLimits(), &replier{body: "ok"})
	r.headers(1, false)
	r.expect("response END_STREAM", func(f http2.Frame) bool {
		d, ok := f.(*http2.DataFrame)
		return ok && d.StreamEnded()
	})
	r.fr.WriteWindowUpdate(1, 1<<31-1)
	r.fr.WriteWindowUpdate(1, 1<<31-1)
	r.expectRST(1, http2.ErrCodeFlowControl)
}

// TestContentLengthMismatch: DATA that does not add up to content-length
// is a stream PROTOCOL_ERROR, whether or not the response was already sent
// (RFC 9113 8.1.1; h2spec http2/8.1.2.6).
func TestContentLengthMismatch(t *testing.T) {
	cl := hpack.HeaderField{Name: "content-length", Value: "1"}
	for _, c := range []struct {
		name   string
		body   string // "" leaves the response open
		frames []string
	}{
		{"one DATA, response open", "", []string{"test"}},
		{"one DATA, response sent", "ok", []string{"test"}},
		{"two DATA, response sent", "ok", []string{"test", "test"}},
		{"too short", "ok", []string{""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &replier{body: c.body, silent: c.body == ""}
			r := newRaw(t, DefaultLimits(), h)
			r.headers(1, false, cl)
			for i, p := range c.frames {
				r.fr.WriteData(1, i == len(c.frames)-1, []byte(p))
			}
			r.expectRST(1, http2.ErrCodeProtocol)
		})
	}
}

// TestHalfClosedRemote: on a stream whose request ended, WINDOW_UPDATE and
// PRIORITY are accepted and the window they open carries the response
// (RFC 9113 5.1; h2spec generic/2).
func TestHalfClosedRemote(t *testing.T) {
	r := newRaw(t, DefaultLimits(), &replier{body: "hello"}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	r.headers(1, true)
	r.expect("response HEADERS", func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
	r.fr.WritePriority(1, http2.PriorityParam{Weight: 255})
	r.fr.WriteWindowUpdate(1, 1)
	d := r.expect("DATA", func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok }).(*http2.DataFrame)
	if string(d.Data()) != "h" {
		t.Fatalf("DATA %q, want the 1 byte the window allows", d.Data())
	}
}

// TestConcurrencyLimit: a stream beyond SETTINGS_MAX_CONCURRENT_STREAMS is
// refused with REFUSED_STREAM (RFC 9113 5.1.2; h2spec http2/5.1.2).
func TestConcurrencyLimit(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxConcurrentStreams = 2
	k := &sink{data: make(chan int, 16)}
	r := newRaw(t, lim, k)
	r.headers(1, false)
	r.headers(3, false)
	r.headers(5, false)
	r.expectRST(5, http2.ErrCodeRefusedStream)
}

// TestIdleSwapsFramer: after a big frame the reader replaces its Framer
// when the connection goes idle (to drop the payload buffer); the HPACK
// dynamic table must survive, so a later header block that refers to an
// entry added before still decodes.
func TestIdleSwapsFramer(t *testing.T) {
	got := make(chan string, 4)
	hdrs := make(chan string, 4)
	h := &headerSpy{replier: replier{got: got}, hdrs: hdrs}
	r := newRaw(t, DefaultLimits(), h)
	custom := hpack.HeaderField{Name: "x-custom", Value: strings.Repeat("v", 100)}
	r.headers(1, false, custom) // adds x-custom to both dynamic tables
	r.fr.WriteData(1, true, make([]byte, 8000))
	<-got
	if v := <-hdrs; v != custom.Value {
		t.Fatalf("first request: x-custom %q", v)
	}
	time.Sleep(50 * time.Millisecond) // the reader goes idle and swaps
	r.headers(3, true, custom)        // now an indexed reference
	select {
	case v := <-hdrs:
		if v != custom.Value {
			t.Fatalf("second request: x-custom %q", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second request not seen")
	}
}

type headerSpy struct {
	replier
	hdrs chan string
}

func (h *headerSpy) HandleStream(s *Stream, f *http2.MetaHeadersFrame) StreamHandler {
	for _, hf := range f.Fields {
		if hf.Name == "x-custom" {
			h.hdrs <- hf.Value
		}
	}
	return h.replier.HandleStream(s, f)
}

// TestHeaderListTooLarge: a request whose header list exceeds
// MaxHeaderListSize (large_client_header_buffers) closes the connection
// with GOAWAY ENHANCE_YOUR_CALM, as nginx ("client sent too large
// header"), and never reaches the handler with fields missing.
func TestHeaderListTooLarge(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxHeaderListSize = 1024
	h := &headerSpy{hdrs: make(chan string, 1)}
	r := newRaw(t, lim, h)
	var extra []hpack.HeaderField
	for i := range 4 { // each field fits, the list does not
		extra = append(extra, hpack.HeaderField{Name: "x-pad" + strings.Repeat("d", i), Value: strings.Repeat("~", 500)})
	}
	r.headers(1, false, extra...)
	if last := r.expectGoAway(http2.ErrCodeEnhanceYourCalm); last != 1 {
		t.Errorf("GOAWAY last stream %d, want 1", last)
	}
	select {
	case <-h.hdrs:
		t.Fatal("the handler saw the request")
	default:
	}
}
