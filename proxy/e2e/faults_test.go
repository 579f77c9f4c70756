package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/gproxy/gproxy/examples/testservice"
)

// TestBackendKilledMidStream kills one backend while server-streaming calls
// run on both: the streams on the dead backend must end with UNAVAILABLE
// within a second, and the others must finish untouched.
func TestBackendKilledMidStream(t *testing.T) {
	bs := startBackends(t, 2)
	addr, _ := grpcSite(t, bs)
	tc := client(t, addr)
	ctx := testCtx(t, 30*time.Second)

	const streams, msgs = 4, 30
	params := make([]*testpb.ResponseParameters, msgs)
	for i := range params {
		params[i] = &testpb.ResponseParameters{Size: 100, IntervalUs: 50_000} // 1.5s in all
	}
	type result struct {
		backend  string
		received int
		err      error
		ended    time.Time
	}
	results := make([]result, streams)
	started := make(chan struct{}, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			r := &results[i]
			defer func() { r.ended = time.Now() }()
			st, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: params})
			if err != nil {
				r.err = err
				started <- struct{}{}
				return
			}
			h, err := st.Header()
			if v := h.Get(testservice.BackendHeader); len(v) > 0 {
				r.backend = v[0]
			}
			if err != nil {
				r.err = err
				started <- struct{}{}
				return
			}
			for {
				_, err := st.Recv()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						r.err = err
					}
					if r.received == 0 {
						started <- struct{}{}
					}
					return
				}
				r.received++
				if r.received == 1 {
					started <- struct{}{}
				}
			}
		})
	}
	for range streams {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("streams did not start")
		}
	}
	killed := time.Now()
	bs[0].kill()
	wg.Wait()

	onDead, onLive := 0, 0
	for i, r := range results {
		t.Logf("stream %d on %q: %d messages, err %v, ended %v after the kill", i, r.backend, r.received, r.err, r.ended.Sub(killed).Round(time.Millisecond))
		switch r.backend {
		case bs[0].name:
			onDead++
			if code := status.Code(r.err); code != codes.Unavailable && !differs(t, "nginx", "a dead upstream resets the client stream with INTERNAL_ERROR (grpc-go: Internal)") {
				t.Errorf("stream %d on the killed backend ended with %v, want Unavailable", i, r.err)
			}
			if d := r.ended.Sub(killed); d > time.Second {
				t.Errorf("stream %d on the killed backend ended %v after the kill, want within 1s", i, d)
			}
		case bs[1].name:
			onLive++
			if r.err != nil || r.received != msgs {
				t.Errorf("stream %d on the live backend: %d/%d messages, err %v; want all, no error", i, r.received, msgs, r.err)
			}
		default:
			t.Errorf("stream %d: no backend header (err %v)", i, r.err)
		}
	}
	if onDead == 0 || onLive == 0 {
		t.Errorf("streams were not spread over both backends (%d on the killed one, %d on the other)", onDead, onLive)
	}

	// The client connection survives, and new calls reach the live backend.
	// Passive health (max_fails=1) may spend a call discovering the dead
	// peer, as nginx does, so a few calls must include successes only from
	// the live one.
	served := map[string]int{}
	for range 4 {
		r, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true})
		if err != nil {
			served["error: "+status.Code(err).String()]++
			continue
		}
		served[r.GetServerId()]++
	}
	t.Logf("4 calls after the kill: %v", served)
	if served[bs[1].name] < 2 || served[bs[0].name] > 0 {
		t.Errorf("calls after the kill: %v, want most served by %s", served, bs[1].name)
	}
}

// TestBackendDownAtStart points the proxy at a port nobody listens on: the
// call fails fast with UNAVAILABLE instead of hanging.
func TestBackendDownAtStart(t *testing.T) {
	dead := &backend{name: "dead", addr: freeAddr(t)}
	addr, _ := grpcSite(t, []*backend{dead})
	tc := client(t, addr)
	ctx := testCtx(t, 10*time.Second)
	for i := range 3 {
		start := time.Now()
		_, err := tc.EmptyCall(ctx, &testpb.Empty{})
		took := time.Since(start)
		t.Logf("call %d: %v after %v", i, err, took.Round(time.Millisecond))
		if status.Code(err) != codes.Unavailable {
			t.Errorf("call %d: %v, want Unavailable", i, err)
		}
		if strings.Contains(fmt.Sprint(err), "unexpected HTTP status code") && !differs(t, "nginx", "answers 502 with an HTML page, which grpc-go maps to Unavailable") {
			t.Errorf("call %d: not a gRPC-native error (grpc-status in trailers): %v", i, err)
		}
		if took > 3*time.Second {
			t.Errorf("call %d took %v", i, took)
		}
	}
}

// TestLargeMessage sends 64 MiB each way in one unary call.
func TestLargeMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB each way")
	}
	bs := startBackends(t, 1)
	addr, _ := grpcSite(t, bs)
	tc := client(t, addr)
	ctx := testCtx(t, 90*time.Second)

	const size = 64 << 20
	body := bytes.Repeat([]byte("gproxy!\n"), size/8)
	r, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{
		ResponseType: testpb.PayloadType_COMPRESSABLE,
		ResponseSize: size,
		Payload:      &testpb.Payload{Body: body},
	})
	if err != nil {
		t.Fatalf("64 MiB call: %v", err)
	}
	if n := len(r.GetPayload().GetBody()); n != size {
		t.Fatalf("response payload %d bytes, want %d", n, size)
	}
	// The request arrived whole too: client streaming reports the sum.
	st, err := tc.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
		t.Fatal(err)
	}
	res, err := st.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if res.GetAggregatedPayloadSize() != size {
		t.Fatalf("backend received %d bytes, want %d", res.GetAggregatedPayloadSize(), size)
	}
}

// TestManyConcurrentStreams holds 10,000 calls open at once over 100 client
// connections, then lets them all finish, and bounds the memory it took.
func TestManyConcurrentStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 streams")
	}
	const conns, perConn = 100, 100
	const total = conns * perConn

	// Every call waits in the backend until all have arrived (or a few
	// seconds passed), so they really are in flight together.
	g := &gate{want: total, open: make(chan struct{})}
	var p *proxyInstance
	var peakMem uint64
	var peakWhat string
	g.onFull = func() { peakMem, peakWhat = p.mem() }
	bs := startBackends(t, 2, grpc.UnaryInterceptor(g.intercept))
	addr, proxy := grpcSite(t, bs)
	p = proxy
	runtime.GC() // twice: sync.Pool keeps a victim cache for one cycle
	runtime.GC()
	baseMem, _ := p.mem()

	ctx := testCtx(t, 120*time.Second)
	clients := make([]testgrpc.TestServiceClient, conns)
	for i := range clients {
		clients[i] = client(t, addr)
	}
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for _, tc := range clients {
		for range perConn {
			wg.Go(func() {
				if _, err := tc.EmptyCall(ctx, &testpb.Empty{}); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			})
		}
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d calls failed, first: %v", n, total, firstErr.Load())
	}
	if served := bs[0].svc.Unary() + bs[1].svc.Unary(); served != total {
		t.Errorf("backends served %d calls, want %d", served, total)
	}
	peak := g.peak.Load()
	t.Logf("%d calls over %d connections: at most %d in flight at once", total, conns, peak)
	if peak < total/2 {
		t.Errorf("only %d calls were in flight together, want most of %d", peak, total)
	}
	if peakMem == 0 {
		peakMem, peakWhat = p.mem()
	}
	t.Logf("%s: %d MiB before, %d MiB with the calls in flight", peakWhat, baseMem>>20, peakMem>>20)
	// Generous: 10,000 streams through gproxy plus grpc-go's own client and
	// server state (in-process) must stay well below 2 GiB.
	const bound = 2 << 30
	if peakMem > bound {
		t.Errorf("memory with %d streams in flight: %d MiB, want < %d MiB", total, peakMem>>20, bound>>20)
	}
}

// gate holds unary calls in the backend until want calls wait together or a
// few seconds passed, and records the largest number waiting at once.
type gate struct {
	want    int64
	waiting atomic.Int64
	peak    atomic.Int64
	once    sync.Once
	open    chan struct{}
	onFull  func()
}

func (g *gate) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	n := g.waiting.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if n >= g.want {
		g.once.Do(func() {
			if g.onFull != nil {
				g.onFull()
			}
			close(g.open)
		})
	}
	select {
	case <-g.open:
	case <-time.After(20 * time.Second):
	case <-ctx.Done():
	}
	g.waiting.Add(-1)
	return h(ctx, req)
}

// TestQuietStreamKeepsConnection: a call whose backend stays silent for
// seconds survives on an upstream with a short keepalive_timeout. gproxy
// used to send its liveness PING after half of keepalive_timeout without
// a frame, and grpc-go, which refuses PINGs more often than every 5
// minutes by default, closed the connection with the call on it
// (GOAWAY ENHANCE_YOUR_CALM "too_many_pings" after the third).
func TestQuietStreamKeepsConnection(t *testing.T) {
	be := startBackend(t, "b1")
	addr := freeAddr(t)
	startProxy(t, fmt.Sprintf(`
upstream backends {
    server %s;
    keepalive 8;
    keepalive_timeout 1s;
}
server {
    listen %s http2;
    location / { grpc_pass grpc://backends; }
}
`, be.addr, addr))
	tc := client(t, addr)
	ctx := testCtx(t, 20*time.Second)
	// Silent for 5 s, then one message.
	st, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 10, IntervalUs: 5_000_000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatalf("the message after 5 s of silence: %v", err)
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of the call: %v, want io.EOF", err)
	}
}
