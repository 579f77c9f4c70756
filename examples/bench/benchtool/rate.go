package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rate measures latency at a fixed load below saturation. h2load --rps is no
// good for this: its clients fire together on a ~10 ms timer, so "5,000/s"
// arrives as bursts of 50 calls every 10 ms, and a call waiting for a free
// stream is timed from when it was finally sent. Here one scheduler sends
// call k at start + k/rps, round robin over -c connections, whatever the
// responses are doing (an open loop); each call is timed from the moment its
// HEADERS are written to the moment its trailers arrive. The client is raw
// HTTP/2 (x/net's Framer and hpack) so that it costs little CPU on the core
// it shares with the backends.
//
// Output: p50 p99 p99.9 (ms), achieved calls/s, calls measured, errors,
// p99 of the scheduler's lateness (ms; large values mean the load core was
// too busy to keep the pace).
func rate(args []string) error {
	fs := flag.NewFlagSet("rate", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	path := fs.String("path", "/grpc.testing.TestService/UnaryCall", "request path")
	bodyFile := fs.String("d", "", "request body: a framed gRPC message (benchtool msg)")
	rps := fs.Int("rps", 5000, "calls per second over all connections")
	conns := fs.Int("c", 10, "connections")
	dur := fs.Duration("t", 5*time.Second, "measured duration")
	warm := fs.Duration("warmup", time.Second, "unmeasured duration before it")
	_ = fs.Parse(args)
	if *addr == "" || *rps <= 0 || *conns <= 0 {
		return errors.New("-addr, -rps > 0 and -c > 0 are required")
	}
	body := []byte{0, 0, 0, 0, 0} // an empty message
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			return err
		}
		body = b
	}
	res, err := runRate(*addr, *path, body, *rps, *conns, *warm, *dur)
	if err != nil {
		return err
	}
	p := func(q float64) string { return fmt.Sprintf("%.3f", ms(percentile(res.lat, q))) }
	fmt.Println(p(50), p(99), p(99.9), fmt.Sprintf("%.0f", res.achieved), len(res.lat), res.errors,
		fmt.Sprintf("%.3f", ms(percentile(res.lag, 99))))
	return nil
}

// rateResult is what runRate measured after the warm-up.
type rateResult struct {
	lat      []time.Duration // one per successful measured call, sorted
	lag      []time.Duration // scheduler lateness per measured call, sorted
	errors   int             // measured calls that failed or never finished
	achieved float64         // measured calls sent per second
	firstErr error
}

func runRate(addr, path string, body []byte, rps, nconns int, warm, dur time.Duration) (*rateResult, error) {
	cs := make([]*rateConn, nconns)
	for i := range cs {
		c, err := dialRateConn(addr, path)
		if err != nil {
			for _, c := range cs[:i] {
				c.close()
			}
			return nil, err
		}
		cs[i] = c
	}
	defer func() {
		for _, c := range cs {
			c.close()
		}
	}()

	interval := time.Second / time.Duration(rps)
	total := int((warm + dur) / interval)
	res := &rateResult{}
	start := time.Now().Add(20 * time.Millisecond)
	measureFrom := start.Add(warm)
	var sent int
	for k := range total {
		due := start.Add(time.Duration(k) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		measured := !due.Before(measureFrom)
		if measured {
			res.lag = append(res.lag, time.Since(due))
			sent++
		}
		cs[k%nconns].send(body, measured)
	}
	elapsed := time.Since(measureFrom)

	// Let the last calls finish; whatever is still open after this failed.
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range cs {
		c.drain(deadline)
	}
	for _, c := range cs {
		c.mu.Lock()
		res.lat = append(res.lat, c.lat...)
		res.errors += c.errors + c.openMeasured()
		if res.firstErr == nil {
			res.firstErr = c.err
		}
		c.mu.Unlock()
	}
	slices.Sort(res.lat)
	slices.Sort(res.lag)
	res.achieved = float64(sent) / elapsed.Seconds()
	if len(res.lat) == 0 {
		return nil, fmt.Errorf("no call succeeded (first error: %v)", res.firstErr)
	}
	if res.firstErr != nil {
		fmt.Fprintf(os.Stderr, "benchtool rate: %d errors; first: %v\n", res.errors, res.firstErr)
	}
	return res, nil
}

// rateConn is one client HTTP/2 connection of the rate command: the
// scheduler writes under mu, one goroutine reads.
type rateConn struct {
	nc   net.Conn
	fr   *http2.Framer
	path string
	done chan struct{} // closed when the reader stops

	mu      sync.Mutex
	enc     *hpack.Encoder
	hbuf    bytes.Buffer
	next    uint32              // next stream id
	sendWin int64               // connection send window the server granted
	maxOpen uint32              // the server's SETTINGS_MAX_CONCURRENT_STREAMS
	open    map[uint32]openCall // calls awaiting their trailers
	lat     []time.Duration
	errors  int
	err     error // first error, or why the connection died
}

type openCall struct {
	sent     time.Time
	measured bool
	status   bool // :status 200 seen
}

// Our receive windows are set so large that the tiny unary responses never
// need a WINDOW_UPDATE from us during a run.
const bigWindow = 1<<31 - 1

func dialRateConn(addr, path string) (*rateConn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &rateConn{
		nc: nc, path: path, next: 1, sendWin: 65535, maxOpen: math.MaxUint32,
		open: map[uint32]openCall{}, done: make(chan struct{}),
	}
	c.fr = http2.NewFramer(nc, nc)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.hbuf)
	_ = nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write([]byte(http2.ClientPreface)); err == nil {
		err = c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: bigWindow})
		if err == nil {
			err = c.fr.WriteWindowUpdate(0, bigWindow-65535)
		}
	}
	_ = nc.SetWriteDeadline(time.Time{})
	if err != nil {
		nc.Close()
		return nil, err
	}
	go c.read()
	return c, nil
}

// send starts one call. It never waits: if the connection cannot take the
// call now, the call counts as an error.
func (c *rateConn) send(body []byte, measured bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fail := func(err error) {
		if measured {
			c.errors++
		}
		if c.err == nil {
			c.err = err
		}
	}
	if c.err != nil {
		fail(c.err)
		return
	}
	// Below saturation neither limit is ever reached; when one is, the
	// figure is void, and the call is an error rather than a wait.
	if len(c.open) >= int(min(c.maxOpen, math.MaxInt32)) {
		fail(fmt.Errorf("all %d streams the server allows are busy: it is saturated", c.maxOpen))
		return
	}
	if c.sendWin < int64(len(body)) {
		fail(errors.New("server's connection window is exhausted"))
		return
	}
	c.hbuf.Reset()
	for _, f := range [...]hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: c.nc.RemoteAddr().String()},
		{Name: ":path", Value: c.path},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "te", Value: "trailers"},
	} {
		_ = c.enc.WriteField(f)
	}
	id := c.next
	c.next += 2
	c.open[id] = openCall{sent: time.Now(), measured: measured}
	_ = c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true})
	if err == nil {
		err = c.fr.WriteData(id, true, body)
	}
	if err != nil {
		delete(c.open, id)
		fail(err)
		return
	}
	c.sendWin -= int64(len(body))
}

// read handles every frame from the server until the connection ends.
func (c *rateConn) read() {
	defer close(c.done)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.mu.Lock()
			if c.err == nil {
				c.err = err
			}
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			c.headers(f)
		case *http2.DataFrame:
			if f.StreamEnded() {
				c.finish(f.StreamID, errors.New("response ended without trailers"))
			}
		case *http2.RSTStreamFrame:
			c.finish(f.StreamID, fmt.Errorf("stream reset: %v", f.ErrCode))
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.sendWin += int64(f.Increment)
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
					c.maxOpen = v
				}
				err = c.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				err = c.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			err = fmt.Errorf("GOAWAY %v", f.ErrCode)
		}
		if err != nil && c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
}

// headers checks a response's headers or trailers; the call ends when the
// block ends the stream. Caller holds mu.
func (c *rateConn) headers(f *http2.MetaHeadersFrame) {
	call, ok := c.open[f.StreamID]
	if !ok {
		return
	}
	if s := f.PseudoValue("status"); s != "" {
		if s != "200" {
			c.finish(f.StreamID, fmt.Errorf("HTTP status %s", s))
			return
		}
		call.status = true
		c.open[f.StreamID] = call
	}
	if !f.StreamEnded() {
		return
	}
	var err error
	switch gs := headerValue(f, "grpc-status"); {
	case !call.status:
		err = errors.New("trailers before :status")
	case gs != "0":
		err = fmt.Errorf("grpc-status %q: %s", gs, headerValue(f, "grpc-message"))
	}
	c.finish(f.StreamID, err)
}

// finish records the end of a call. Caller holds mu.
func (c *rateConn) finish(id uint32, err error) {
	call, ok := c.open[id]
	if !ok {
		return
	}
	delete(c.open, id)
	switch {
	case err != nil:
		if call.measured {
			c.errors++
		}
		if c.err == nil {
			c.err = err
		}
	case call.measured:
		c.lat = append(c.lat, time.Since(call.sent))
	}
}

// drain waits until every call on c has ended, the connection died or the
// deadline passed.
func (c *rateConn) drain(deadline time.Time) {
	for time.Now().Before(deadline) {
		c.mu.Lock()
		n := len(c.open)
		c.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-c.done:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// openMeasured is how many measured calls never ended. Caller holds mu.
func (c *rateConn) openMeasured() int {
	n := 0
	for _, call := range c.open {
		if call.measured {
			n++
		}
	}
	return n
}

func (c *rateConn) close() {
	c.nc.Close()
	<-c.done
}

func headerValue(f *http2.MetaHeadersFrame, name string) string {
	for _, hf := range f.RegularFields() {
		if hf.Name == name {
			return hf.Value
		}
	}
	return ""
}

// percentile returns the q-th percentile (nearest rank) of sorted d.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	// The epsilon keeps 99.9% of 1000 at rank 999 despite float rounding.
	i := int(math.Ceil(q/100*float64(len(d))-1e-9)) - 1
	return d[max(0, min(i, len(d)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
