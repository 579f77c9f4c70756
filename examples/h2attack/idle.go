package h2attack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// IdleAfterCall opens n connections to addr that each make one gRPC call
// (TestService.UnaryCall asking for a 100-byte response), read its answer
// to the trailers, and then stay silent: what a fleet of long-lived,
// mostly idle gRPC clients leaves on a proxy (issue 15's idle-connection
// measure). It returns once every call has ended; closeAll closes the
// connections. A failed dial or call stops the run with an error saying
// which connection failed (closeAll is then already done).
func IdleAfterCall(ctx context.Context, addr string, n int) (closeAll func(), err error) {
	conns := make([]*conn, n)
	closeAll = func() {
		for _, c := range conns {
			if c != nil {
				c.nc.Close()
			}
		}
	}
	// A few calls at a time, as clients arriving over a while would.
	const parallel = 8
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	next := make(chan int)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := oneCall(ctx, addr)
				mu.Lock()
				if c != nil {
					conns[i] = c
				}
				if err != nil && first == nil {
					first = fmt.Errorf("connection %d: %w", i+1, err)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	if first != nil {
		closeAll()
		return func() {}, first
	}
	return closeAll, nil
}

// oneCall dials addr and makes one unary call on stream 1, acknowledging
// the server's SETTINGS as a client must. The connection stays open.
func oneCall(ctx context.Context, addr string) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, fr: http2.NewFramer(nc, nc)}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write([]byte(http2.ClientPreface)); err != nil {
		return c, err
	}
	if err := c.fr.WriteSettings(); err != nil {
		return c, err
	}
	c.enc = hpack.NewEncoder(&c.hbuf)
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block("/grpc.testing.TestService/UnaryCall"), EndHeaders: true}); err != nil {
		return c, err
	}
	if err := c.fr.WriteData(1, true, grpcRequest(100)); err != nil {
		return c, err
	}
	var settingsAcked, ended bool
	for !settingsAcked || !ended {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return c, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				settingsAcked = true
			} else if err := c.fr.WriteSettingsAck(); err != nil {
				return c, err
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				if err := c.fr.WritePing(true, f.Data); err != nil {
					return c, err
				}
			}
		case *http2.RSTStreamFrame:
			return c, fmt.Errorf("stream reset: %v", f.ErrCode)
		case *http2.GoAwayFrame:
			return c, fmt.Errorf("GOAWAY %v", f.ErrCode)
		case *http2.MetaHeadersFrame:
			if st := f.PseudoValue("status"); st != "" && st != "200" {
				return c, fmt.Errorf("HTTP status %s", st)
			}
			if gs := f.Header().Flags.Has(http2.FlagHeadersEndStream); gs {
				ended = true
				var status string
				for _, hf := range f.RegularFields() {
					if hf.Name == "grpc-status" {
						status = hf.Value
					}
				}
				if status != "0" {
					return c, fmt.Errorf("grpc-status %q", status)
				}
			}
		case *http2.DataFrame:
			ended = ended || f.StreamEnded()
		}
	}
	if ctx.Err() != nil {
		return c, errors.New("interrupted")
	}
	return c, nil
}
