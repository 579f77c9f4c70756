package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func TestClassifyRequestLine(t *testing.T) {
	for _, c := range []struct {
		in   string
		want protocol
	}{
		{"", protoUndecided},
		{"GET", protoUndecided},
		{"GET ", protoUndecided},
		{"GET /healthz", protoUndecided},
		{"GET /healthz HTTP/1.", protoUndecided},
		{"GET /healthz HTTP/1.1", protoUndecided},
		{"GET /healthz HTTP/1.1\r\n", protoHTTP1},
		{"GET / HTTP/1.0\n", protoHTTP1},
		{"M-SEARCH * HTTP/1.1\r\n", protoHTTP1},
		{"POST /a?b=%20 HTTP/1.1\r\nHost: x\r\n\r\n", protoHTTP1},
		{"INVALID CONNECTION PREFACE\r\n\r\n", protoInvalid}, // h2spec http2/3.5
		{"GET / HTTP/2.0\r\n", protoInvalid},
		{"GET /\r\n", protoInvalid}, // HTTP/0.9
		{"GET  / HTTP/1.1\r\n", protoInvalid},
		{" GET / HTTP/1.1\r\n", protoInvalid},
		{"\x00\x00\x12\x04\x00\x00\x00\x00\x00", protoInvalid}, // a frame, no preface
		{"GET / HTTP/1.1 \r\n", protoInvalid},
		{"G(T / HTTP/1.1\r\n", protoInvalid},
	} {
		if got := classifyRequestLine([]byte(c.in)); got != c.want {
			t.Errorf("classifyRequestLine(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// dialRaw connects to addr with a deadline covering the whole test case.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return nc
}

// TestSniffing: on an http2 listener, the preface is HTTP/2, an HTTP/1.x
// request line is HTTP/1 (probes), and anything else is an invalid preface:
// SETTINGS, GOAWAY PROTOCOL_ERROR, and a clean close (RFC 9113 3.4; h2spec
// http2/3.5). A listener without http2 leaves everything to HTTP/1.
func TestSniffing(t *testing.T) {
	port := freePort(t)
	s := startProxy(t, articleConf(port, "127.0.0.1:1"))
	addr := s.Addrs()[0].String()

	t.Run("invalid preface", func(t *testing.T) {
		for _, junk := range []string{"INVALID CONNECTION PREFACE\r\n\r\n", "\x00\x00\x00\x04\x00\x00\x00\x00\x00", "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"} {
			nc := dialRaw(t, addr)
			io.WriteString(nc, junk)
			fr := http2.NewFramer(nil, nc)
			var code http2.ErrCode = 1 << 20
			for {
				f, err := fr.ReadFrame()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("%q: %v, want GOAWAY then EOF", junk, err)
				}
				if g, ok := f.(*http2.GoAwayFrame); ok {
					code = g.ErrCode
				}
			}
			if code != http2.ErrCodeProtocol {
				t.Errorf("%q: GOAWAY code %v, want PROTOCOL_ERROR", junk, code)
			}
		}
	})
	t.Run("HTTP/1.1 probe", func(t *testing.T) {
		nc := dialRaw(t, addr)
		io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(bufio.NewReader(nc))
		if !strings.HasPrefix(string(b), "HTTP/1.1 200") || !strings.HasSuffix(string(b), "ok") {
			t.Fatalf("response %q", b)
		}
	})
}

// h2raw is a hand-driven HTTP/2 client for the proxy.
type h2raw struct {
	t    *testing.T
	nc   net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
}

func newH2raw(t *testing.T, addr string) *h2raw {
	t.Helper()
	c := &h2raw{t: t, nc: dialRaw(t, addr)}
	c.fr = http2.NewFramer(c.nc, c.nc)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.hbuf)
	io.WriteString(c.nc, http2.ClientPreface)
	c.fr.WriteSettings()
	c.fr.WriteSettingsAck()
	return c
}

func (c *h2raw) request(id uint32, method, path string, end bool, extra ...hpack.HeaderField) {
	c.hbuf.Reset()
	for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: method}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: path}, {Name: ":authority", Value: "localhost"}}, extra...) {
		c.enc.WriteField(f)
	}
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: end, EndHeaders: true})
}

// next returns the next frame on a stream other than 0, WINDOW_UPDATEs
// aside.
func (c *h2raw) next() http2.Frame {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("reading: %v", err)
		}
		if _, wu := f.(*http2.WindowUpdateFrame); !wu && f.Header().StreamID != 0 {
			return f
		}
	}
}

// TestReturnWithPendingBody: `return` answers at once and then reads and
// drops the rest of the request body, as nginx does, instead of resetting
// the stream: so the body's frames are still checked (content-length,
// flow control), and a body that ends normally ends the stream cleanly.
func TestReturnWithPendingBody(t *testing.T) {
	port := freePort(t)
	s := startProxy(t, articleConf(port, "127.0.0.1:1"))
	addr := s.Addrs()[0].String()

	// response reads the response to stream 1: HEADERS 200, DATA "ok" with
	// END_STREAM, and nothing else on the stream.
	response := func(c *h2raw) {
		t.Helper()
		if h, ok := c.next().(*http2.MetaHeadersFrame); !ok || h.PseudoValue("status") != "200" {
			t.Fatalf("want HEADERS 200")
		}
		if d, ok := c.next().(*http2.DataFrame); !ok || string(d.Data()) != "ok" || !d.StreamEnded() {
			t.Fatalf("want DATA \"ok\" END_STREAM")
		}
	}
	rst := func(c *h2raw, code http2.ErrCode) {
		t.Helper()
		f, ok := c.next().(*http2.RSTStreamFrame)
		if !ok || f.ErrCode != code {
			t.Fatalf("got %v, want RST_STREAM %v", f, code)
		}
	}
	t.Run("content-length mismatch", func(t *testing.T) {
		c := newH2raw(t, addr)
		c.request(1, "POST", "/healthz", false, hpack.HeaderField{Name: "content-length", Value: "1"})
		response(c)
		c.fr.WriteData(1, true, []byte("test"))
		rst(c, http2.ErrCodeProtocol)
	})
	t.Run("window overflow", func(t *testing.T) {
		c := newH2raw(t, addr)
		c.request(1, "GET", "/healthz", false)
		response(c)
		c.fr.WriteWindowUpdate(1, 1<<31-1)
		c.fr.WriteWindowUpdate(1, 1<<31-1)
		rst(c, http2.ErrCodeFlowControl)
	})
	t.Run("body ends normally", func(t *testing.T) {
		c := newH2raw(t, addr)
		c.request(1, "POST", "/healthz", false)
		response(c)
		for range 4 {
			c.fr.WriteData(1, false, make([]byte, 15<<10))
		}
		c.fr.WriteData(1, true, nil)
		c.request(3, "GET", "/healthz", true)
		if f := c.next(); f.Header().StreamID != 3 {
			t.Fatalf("got %v on stream 1 after its body ended, want stream 3's response", f)
		}
	})
}
