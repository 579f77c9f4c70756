package h2

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

var writeSeeds = flag.Bool("h2.writeseeds", false, "rewrite testdata/fuzz/FuzzFrames from frameSeeds")

// frameSeeds are client byte streams after the preface: an ordinary
// request, and one of each attack of issue 15 in small.
func frameSeeds() [][]byte {
	var seeds [][]byte
	build := func(f func(fr *http2.Framer, blk func(extra ...hpack.HeaderField) []byte)) {
		var b bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		blk := func(extra ...hpack.HeaderField) []byte {
			hb.Reset()
			for _, hf := range append([]hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
				{Name: ":path", Value: "/a.B/C"}, {Name: ":authority", Value: "x"}, {Name: "te", Value: "trailers"}}, extra...) {
				enc.WriteField(hf)
			}
			return append([]byte(nil), hb.Bytes()...)
		}
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		f(fr, blk)
		seeds = append(seeds, b.Bytes())
	}
	build(func(fr *http2.Framer, blk func(...hpack.HeaderField) []byte) { // a unary call
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk(), EndHeaders: true})
		fr.WriteData(1, true, []byte{0, 0, 0, 0, 2, 8, 1})
		fr.WriteWindowUpdate(0, 1000)
		fr.WritePing(false, [8]byte{1})
		fr.WriteGoAway(1, http2.ErrCodeNo, nil)
	})
	build(func(fr *http2.Framer, blk func(...hpack.HeaderField) []byte) { // rapid reset
		for id := uint32(1); id < 20; id += 2 {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk(), EndHeaders: true})
			fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
	})
	build(func(fr *http2.Framer, blk func(...hpack.HeaderField) []byte) { // CONTINUATION and empty DATA
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk()[:3]})
		fr.WriteContinuation(1, false, nil)
		fr.WriteContinuation(1, true, blk()[3:])
		fr.WriteData(1, false, nil)
		fr.WriteData(1, false, nil)
	})
	build(func(fr *http2.Framer, blk func(...hpack.HeaderField) []byte) { // flow control and settings
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 14})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: blk(hpack.HeaderField{Name: "content-length", Value: "3"}), EndHeaders: true})
		fr.WriteData(3, true, []byte("abc"))
		fr.WriteWindowUpdate(3, 10)
		fr.WritePriority(5, http2.PriorityParam{StreamDep: 5})
		fr.WriteSettingsAck()
	})
	return seeds
}

// TestWriteFuzzSeeds rewrites the seed corpus under testdata (run with
// -h2.writeseeds after changing frameSeeds).
func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("-h2.writeseeds not set")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzFrames")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range frameSeeds() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s)))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzFrames feeds arbitrary bytes, as a client's after the preface, to a
// Server-role connection whose handler answers every stream. The
// connection must neither panic nor hang: it ends within a second of the
// input ending.
func FuzzFrames(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		cli, srv := net.Pipe()
		lim := DefaultLimits()
		lim.IdleTimeout = time.Second
		c := NewConn(srv, nil, Server, lim, &replier{body: "ok"})
		done := make(chan struct{})
		go func() { c.Serve(); close(done) }()
		go func() { // the client reads whatever comes back
			var buf [4096]byte
			for {
				if _, err := cli.Read(buf[:]); err != nil {
					return
				}
			}
		}()
		cli.SetWriteDeadline(time.Now().Add(time.Second))
		cli.Write(data)
		cli.Close()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatalf("Serve did not return after the input ended")
		}
	})
}
