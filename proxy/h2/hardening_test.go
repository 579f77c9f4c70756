package h2

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Tests of the limits of issue 15, driven by a raw client.

// countingReplier counts the streams handed to HandleStream.
type countingReplier struct {
	replier
	n atomic.Int32
}

func (h *countingReplier) HandleStream(s *Stream, f *http2.MetaHeadersFrame) StreamHandler {
	h.n.Add(1)
	return h.replier.HandleStream(s, f)
}

// pairs returns HEADERS + RST_STREAM CANCEL for n streams from id 1, as
// one byte string, so that they reach the server in one read.
func (r *rawClient) pairs(n int) []byte {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	for i := range n {
		id := uint32(2*i + 1)
		r.hbuf.Reset()
		for _, f := range reqFields {
			r.enc.WriteField(f)
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.hbuf.Bytes(), EndHeaders: true})
		fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	return b.Bytes()
}

// TestRapidResetNotDispatched: a stream the client resets in the same
// read never reaches the handler (so never a backend).
func TestRapidResetNotDispatched(t *testing.T) {
	h := &countingReplier{}
	r := newRaw(t, DefaultLimits(), h)
	if _, err := r.nc.Write(r.pairs(10)); err != nil {
		t.Fatal(err)
	}
	r.fr.WritePing(false, [8]byte{7})
	r.expect("PING ACK", func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && p.IsAck() })
	if n := h.n.Load(); n != 0 {
		t.Fatalf("%d reset streams reached the handler, want 0", n)
	}
}

// TestGlitchesClose: MaxGlitches streams reset before their response
// close the connection with GOAWAY ENHANCE_YOUR_CALM.
func TestGlitchesClose(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxGlitches = 10
	r := newRaw(t, lim, &replier{silent: true})
	if _, err := r.nc.Write(r.pairs(10)); err != nil {
		t.Fatal(err)
	}
	r.expectGoAway(http2.ErrCodeEnhanceYourCalm)
}

// TestHPACKBombFirstList: on a connection that has served a stream, the
// first header list over the limit (an HPACK bomb costs its sender a byte
// per field) closes it with GOAWAY ENHANCE_YOUR_CALM naming that stream,
// as nginx does; HAProxy closes at the first too (COMPRESSION_ERROR).
func TestHPACKBombFirstList(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxHeaderListSize = 1024
	r := newRaw(t, lim, &replier{})
	var big []hpack.HeaderField
	for i := range 4 { // each field fits, the list does not
		big = append(big, hpack.HeaderField{Name: "x-pad" + strings.Repeat("d", i), Value: strings.Repeat("~", 500)})
	}
	r.headers(1, true)
	r.headers(3, true, big...)
	if last := r.expectGoAway(http2.ErrCodeEnhanceYourCalm); last != 3 {
		t.Errorf("GOAWAY last stream %d, want 3", last)
	}
}

// TestFloodRule: frames without payload beyond nginx's flood rule (an
// eighth of the bytes read over the payload by 1 MiB) close the
// connection, even from a client that reads every answer.
func TestFloodRule(t *testing.T) {
	old := floodSlack.Swap(16 << 10) // 128 KiB of frames instead of 8 MiB: quick under -race
	defer floodSlack.Store(old)
	r := newRaw(t, DefaultLimits(), &replier{})
	go func() {
		var b bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		for range 1000 {
			fr.WriteWindowUpdate(0, 1)
		}
		for range 100 { // 1.3 MB of WINDOW_UPDATE: past 128 KiB
			if _, err := r.nc.Write(b.Bytes()); err != nil {
				return
			}
		}
	}()
	r.expect("GOAWAY", func(f http2.Frame) bool {
		g, ok := f.(*http2.GoAwayFrame)
		if ok && g.ErrCode != http2.ErrCodeEnhanceYourCalm {
			t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", g.ErrCode)
		}
		return ok
	})
}

// lyingServer answers with content-length 5 and a 10-byte body.
type lyingServer struct{ nopHandler }

func (lyingServer) HandleStream(s *Stream, _ *http2.MetaHeadersFrame) StreamHandler {
	s.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-length", Value: "5"}}, false)
	s.WriteData([]byte("0123456789"), true)
	return nil
}

// resetSpy reports a stream's reset.
type resetSpy struct {
	nopHandler
	reset chan error
}

func (h *resetSpy) HandleData(s *Stream, p []byte, _ bool) { s.Credit(len(p)) }
func (h *resetSpy) HandleReset(_ *Stream, err error)       { h.reset <- err }

// TestResponseContentLength: an upstream response body longer than its
// content-length resets the stream, as nginx does.
func TestResponseContentLength(t *testing.T) {
	cc, _ := pair(t, DefaultLimits(), lyingServer{}, nil)
	h := &resetSpy{reset: make(chan error, 1)}
	if _, err := cc.OpenStream(reqFields, true, h); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-h.reset:
		var se *StreamError
		if !errors.As(err, &se) || se.Err == nil || !strings.Contains(se.Err.Error(), "content-length") {
			t.Fatalf("reset with %v, want a content-length mismatch", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream was not reset")
	}
}

// TestHeaderTimeout: a client that stops in the middle of a frame is
// closed after client_header_timeout (between one and two times it).
func TestHeaderTimeout(t *testing.T) {
	lim := DefaultLimits()
	lim.HeaderTimeout = 100 * time.Millisecond
	r := newRaw(t, lim, &replier{})
	r.headers(1, true)                                    // one stream, answered: the connection is busy, not idle
	r.nc.Write([]byte{0, 0, 8, byte(http2.FramePing), 0}) // half a frame header
	start := time.Now()
	r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := r.fr.ReadFrame(); err != nil {
			break
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("closed after %v, want about 100-200ms", d)
	}
}

// TestBodyTimeout: a stream whose request body stops coming is reset with
// CANCEL after client_body_timeout.
func TestBodyTimeout(t *testing.T) {
	lim := DefaultLimits()
	lim.BodyTimeout = 100 * time.Millisecond
	r := newRaw(t, lim, &replier{silent: true})
	r.headers(1, false)
	r.expectRST(1, http2.ErrCodeCancel)
}

// smallReceiveBuffer makes the raw client of the test read into a 4 KiB
// socket buffer, so that the server's answers back up quickly.
func smallReceiveBuffer(t *testing.T) {
	rawDialer.Control = func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10) })
	}
	t.Cleanup(func() { rawDialer.Control = nil })
}

// backlogClient is a raw client with a 4 KiB receive buffer to a server
// whose MaxControlBacklog is 4 KiB and BacklogWait wait.
func backlogClient(t *testing.T, wait time.Duration) *rawClient {
	lim := DefaultLimits()
	lim.MaxControlBacklog = 4 << 10
	lim.BacklogWait = wait
	smallReceiveBuffer(t)
	return newRaw(t, lim, &replier{})
}

// pingFlood returns n PING frames as one byte string.
func pingFlood(n int) []byte {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	for i := range n {
		fr.WritePing(false, [8]byte{byte(i)})
	}
	return b.Bytes()
}

// TestBacklogPauseResumes: a client that sends PINGs without reading
// stops being read once MaxControlBacklog is unwritten (its writes
// wait in TCP); when it reads again within BacklogWait, every PING is
// answered and the connection goes on.
func TestBacklogPauseResumes(t *testing.T) {
	r := backlogClient(t, 20*time.Second)
	const n = 40000 // 680 KB of PINGs, as much in ACKs: far past the bound
	wrote := make(chan error, 1)
	go func() { _, err := r.nc.Write(pingFlood(n)); wrote <- err }()
	time.Sleep(300 * time.Millisecond) // the server pauses meanwhile
	acks := 0
	r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for acks < n {
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d of %d PING ACKs: %v", acks, n, err)
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
			acks++
		}
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	r.fr.WritePing(false, [8]byte{9})
	r.expect("PING ACK after the flood", func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && p.IsAck() && p.Data[0] == 9 })
}

// TestBacklogWaitCloses: a client that never reads is closed once its
// backlog has stayed past MaxControlBacklog for BacklogWait.
func TestBacklogWaitCloses(t *testing.T) {
	floodUntilClosed(backlogClient(t, 200*time.Millisecond))
}

// floodUntilClosed sends PINGs without reading until the server closes
// the connection; the test fails if it is still open after 10 s.
func floodUntilClosed(r *rawClient) {
	batch := pingFlood(1000)
	r.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, err := r.nc.Write(batch); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				r.t.Fatal("still open 10 s into the flood")
			}
			return // closed by the server
		}
	}
}

// TestUnsentControlReplies: a client that sends PINGs and never reads,
// with socket buffers as the kernel sizes them, is not read past what the
// kernel holds unsent plus MaxControlBacklog: the ACKs the client leaves
// unread pile up in our socket's send buffer (megabytes) before any reach
// the connection's own backlog. Then it is closed after BacklogWait.
func TestUnsentControlReplies(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxControlBacklog = 64 << 10
	lim.BacklogWait = 200 * time.Millisecond
	r := newRaw(t, lim, &replier{})
	floodUntilClosed(r)
	select {
	case <-r.served:
	case <-time.After(5 * time.Second):
		t.Fatal("the server's connection did not end")
	}
	// What the client's receive buffer takes (128 KiB by default), the
	// bound, one check interval, and a read's worth of slack.
	read := r.srv.rd.total
	t.Logf("the server read %d KiB", read>>10)
	if read > 1<<20 {
		t.Fatalf("the server read %d KiB of PINGs from a client that reads nothing, want under 1 MiB", read>>10)
	}
}

// TestEmptyContinuationGlitches: empty CONTINUATION frames are glitches
// (as HAProxy counts them): MaxGlitches of them close the connection with
// GOAWAY ENHANCE_YOUR_CALM, long before the flood rule's bytes.
func TestEmptyContinuationGlitches(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxGlitches = 10
	r := newRaw(t, lim, &replier{})
	r.hbuf.Reset()
	for _, f := range reqFields {
		r.enc.WriteField(f)
	}
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.hbuf.Bytes()})
	for range 10 {
		r.fr.WriteContinuation(1, false, nil)
	}
	r.expectGoAway(http2.ErrCodeEnhanceYourCalm)
}
