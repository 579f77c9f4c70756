package h2

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gproxy/gproxy/proxy/nettest"
)

// overpadded is a Huffman string literal of s followed by a whole byte of
// EOS padding, as nginx's test backend writes when a code ends on a byte
// boundary.
func overpadded(s string) []byte {
	h := hpack.AppendHuffmanString(nil, s)
	h = append(h, 0xff)
	return appendString(nil, h)
}

// literalNew is a literal field with incremental indexing and a new name
// (RFC 7541 6.2.1), both strings given already encoded.
func literalNew(name, value []byte) []byte {
	return append(append([]byte{0x40}, name...), value...)
}

func plain(s string) []byte { // a raw string literal
	return append([]byte{byte(len(s))}, s...)
}

func TestTrimPadding(t *testing.T) {
	long := strings.Repeat("grpc-message-", 20) // a length over 126: a multi-byte integer
	var block []byte
	block = append(block, 0x88) // :status 200
	block = append(block, literalNew(plain("x-a"), overpadded("abc"))...)
	block = append(block, literalNew(overpadded("x-long"), overpadded(long))...)
	block = append(block, 0x0f, 0x10) // literal without indexing, static name 31 (content-type)
	block = append(block, overpadded("application/grpc")...)
	want := []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "x-a", Value: "abc"},
		{Name: "x-long", Value: long}, {Name: "content-type", Value: "application/grpc"}}

	if _, err := hpack.NewDecoder(4096, nil).DecodeFull(block); err == nil {
		t.Fatal("the strict decoder took overlong padding; the test proves nothing")
	}
	got, err := hpack.NewDecoder(4096, nil).DecodeFull(trimPadding(block))
	if err != nil {
		t.Fatalf("after trimPadding: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Value != want[i].Value {
			t.Fatalf("field %d: %v, want %v", i, got[i], want[i])
		}
	}

	good := append([]byte{0x88}, literalNew(plain("x-b"), appendString(nil, hpack.AppendHuffmanString(nil, "v")))...)
	if out := trimPadding(good); &out[0] != &good[0] || !bytes.Equal(out, good) {
		t.Fatal("a block that needs no trimming was copied or changed")
	}
	for _, bad := range [][]byte{{0x40}, {0x40, 0x85, 1}, {0x7f}, {0xff, 0xff, 0xff}} {
		if out := trimPadding(bad); !bytes.Equal(out, bad) {
			t.Fatalf("truncated block %x changed to %x", bad, out)
		}
	}
}

// TestUpstreamOverlongPadding: a backend's response headers with overlong
// Huffman padding, split over HEADERS and CONTINUATION, reach the handler;
// the same padding from a client is a COMPRESSION_ERROR (RFC 7541 5.2).
func TestUpstreamOverlongPadding(t *testing.T) {
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go fakeServer(ln, 5*time.Second, func(nc net.Conn, fr *http2.Framer, f http2.Frame) bool {
		if hf, ok := f.(*http2.HeadersFrame); ok {
			block := append([]byte{0x88}, literalNew(overpadded("x-test"), overpadded("padded"))...)
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: hf.StreamID, BlockFragment: block[:4]})
			fr.WriteContinuation(hf.StreamID, true, block[4:])
			var tb []byte
			tb = append(tb, literalNew(plain("grpc-status"), overpadded("0"))...)
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: hf.StreamID, BlockFragment: tb, EndStream: true, EndHeaders: true})
			io.Copy(io.Discard, nc)
			return false
		}
		return true
	})
	cc := dialServing(t, ln.Addr().String())
	h := respHandler{got: make(chan *http2.MetaHeadersFrame, 2)}
	if _, err := cc.OpenStream(reqFields, true, h); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ name, value string }{{"x-test", "padded"}, {"grpc-status", "0"}} {
		select {
		case f := <-h.got:
			var got string
			for _, hf := range f.RegularFields() {
				if hf.Name == want.name {
					got = hf.Value
				}
			}
			if got != want.value {
				t.Fatalf("%s = %q, want %q (fields %v)", want.name, got, want.value, f.Fields)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no header block with %s (conn err %v)", want.name, cc.Err())
		}
	}

	r := newRaw(t, DefaultLimits(), &replier{})
	var block []byte
	r.hbuf.Reset()
	for _, f := range reqFields {
		r.enc.WriteField(f)
	}
	block = append(append(block, r.hbuf.Bytes()...), literalNew(plain("x-test"), overpadded("padded"))...)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: true})
	r.expectGoAway(http2.ErrCodeCompression)
}
