package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// stream measures bulk throughput through a proxy: -c connections, each
// running one streaming call after another, each call carrying 16 messages
// of -size bytes, server->client (-dir down: StreamingOutputCall) or
// client->server (-dir up: StreamingInputCall). New calls start until -t has
// passed; calls already running finish, and only whole calls are counted,
// so the figure is bytes delivered over the time they took.
//
// Output: MB/s (10^6 bytes), messages, calls.
func stream(args []string) error {
	fs := flag.NewFlagSet("stream", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	dir := fs.String("dir", "down", "down: server->client; up: client->server")
	conns := fs.Int("c", 4, "connections, one call at a time each")
	size := fs.Int("size", 1<<20, "message size")
	perCall := fs.Int("m", 16, "messages per call")
	dur := fs.Duration("t", 4*time.Second, "start calls for this long")
	_ = fs.Parse(args)
	call, ok := streamCalls[*dir]
	if !ok {
		return fmt.Errorf("-dir %q: want down or up", *dir)
	}
	if *conns <= 0 || *perCall <= 0 || *size <= 0 {
		return errors.New("-c, -m and -size must be positive")
	}
	res, err := runStream(*addr, call, *conns, *size, *perCall, *dur)
	if err != nil {
		return err
	}
	fmt.Printf("%.1f %d %d\n", res.mbps, res.msgs, res.calls)
	return nil
}

// streamCall runs one whole call of n messages of size bytes; it returns how
// many messages crossed.
type streamCall func(ctx context.Context, tc testgrpc.TestServiceClient, size, n int) (int, error)

var streamCalls = map[string]streamCall{"down": callDown, "up": callUp}

func callDown(ctx context.Context, tc testgrpc.TestServiceClient, size, n int) (int, error) {
	params := make([]*testpb.ResponseParameters, n)
	for i := range params {
		params[i] = &testpb.ResponseParameters{Size: int32(size)}
	}
	st, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: params})
	if err != nil {
		return 0, err
	}
	got := 0
	for {
		r, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return got, err
		}
		if len(r.GetPayload().GetBody()) != size {
			return got, fmt.Errorf("got a message of %d bytes, want %d", len(r.GetPayload().GetBody()), size)
		}
		got++
	}
	if got != n {
		return got, fmt.Errorf("got %d messages, want %d", got, n)
	}
	return got, nil
}

func callUp(ctx context.Context, tc testgrpc.TestServiceClient, size, n int) (int, error) {
	st, err := tc.StreamingInputCall(ctx)
	if err != nil {
		return 0, err
	}
	req := &testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, size)}}
	for range n {
		if err := st.Send(req); err != nil {
			_, err = st.CloseAndRecv() // the real error is the call's status
			return 0, err
		}
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		return 0, err
	}
	if want := int32(size * n); resp.GetAggregatedPayloadSize() != want {
		return 0, fmt.Errorf("server received %d bytes, want %d", resp.GetAggregatedPayloadSize(), want)
	}
	return n, nil
}

type streamResult struct {
	mbps        float64
	msgs, calls int64
}

func runStream(addr string, call streamCall, conns, size, perCall int, dur time.Duration) (*streamResult, error) {
	// The bound on the whole run: calls started before dur get ample time.
	ctx, cancel := context.WithTimeout(context.Background(), dur+30*time.Second)
	defer cancel()
	var msgs, calls atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	stopAt := start.Add(dur)
	for range conns {
		cc, err := dial(addr, size+1024)
		if err != nil {
			return nil, err
		}
		defer cc.Close()
		tc := testgrpc.NewTestServiceClient(cc)
		wg.Go(func() {
			for time.Now().Before(stopAt) {
				n, err := call(ctx, tc, size, perCall)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				msgs.Add(int64(n))
				calls.Add(1)
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	if p := firstErr.Load(); p != nil {
		return nil, *p
	}
	return &streamResult{
		mbps:  float64(msgs.Load()) * float64(size) / 1e6 / el.Seconds(),
		msgs:  msgs.Load(),
		calls: calls.Load(),
	}, nil
}
