package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gproxy/gproxy/examples/testservice"
)

// methodSite is grpcSite with a balancing directive in the upstream.
func methodSite(t *testing.T, method string, bs []*backend, params ...string) string {
	t.Helper()
	addr := freeAddr(t)
	ups := upstreamBlock("backends", bs, params...)
	if method != "" {
		ups = "upstream backends {\n    " + method + ";\n" + ups[len("upstream backends {\n"):]
	}
	startProxy(t, ups+fmt.Sprintf(`
server {
    listen %s http2;
    location / {
        grpc_pass grpc://backends;
    }
}
`, addr))
	return addr
}

// TestHashHeaderSticks: `hash $http_x_user consistent` sends every call of
// a user (the x-user metadata) to one backend, and the users spread over
// the backends.
func TestHashHeaderSticks(t *testing.T) {
	bs := startBackends(t, 3)
	addr := methodSite(t, "hash $http_x_user consistent", bs)
	tc := client(t, addr)
	ctx := testCtx(t, 30*time.Second)
	served := map[string]int{}
	for u := range 60 {
		user := fmt.Sprintf("user-%d", u)
		first := ""
		for range 4 {
			r, err := tc.UnaryCall(metadata.AppendToOutgoingContext(ctx, "x-user", user), &testpb.SimpleRequest{FillServerId: true})
			if err != nil {
				t.Fatal(err)
			}
			if first == "" {
				first = r.GetServerId()
				served[first]++
			} else if r.GetServerId() != first {
				t.Fatalf("%s went to %s, then %s", user, first, r.GetServerId())
			}
		}
	}
	if len(served) != 3 {
		t.Fatalf("60 users on %d backends: %v", len(served), served)
	}
	t.Logf("users per backend: %v", served)
}

// TestLeastConnAvoidsLongStreams: with least_conn, a backend holding a
// long stream gets no new calls while another is idle; with round robin
// it gets its turn regardless.
func TestLeastConnAvoidsLongStreams(t *testing.T) {
	for _, method := range []string{"least_conn", ""} {
		t.Run("method="+method, func(t *testing.T) {
			bs := startBackends(t, 2)
			addr := methodSite(t, method, bs)
			tc := client(t, addr)
			ctx := testCtx(t, 30*time.Second)
			long, err := tc.FullDuplexCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := long.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}}); err != nil {
				t.Fatal(err)
			}
			h, err := long.Header()
			if err != nil {
				t.Fatal(err)
			}
			holder := h.Get(testservice.BackendHeader)[0]
			onHolder := 0
			for range 20 {
				r, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true})
				if err != nil {
					t.Fatal(err)
				}
				if r.GetServerId() == holder {
					onHolder++
				}
			}
			long.CloseSend()
			switch {
			case method == "least_conn" && onHolder != 0:
				t.Fatalf("least_conn sent %d of 20 calls to %s, which holds a long stream", onHolder, holder)
			case method == "" && onHolder != 10:
				t.Fatalf("round robin sent %d of 20 calls to %s, want 10", onHolder, holder)
			}
		})
	}
}

// TestMaxConnsUnderLoad: 1,000 concurrent calls against three backends
// with max_conns=40 each: no backend ever holds more than 40 of them at
// once; the rest are refused at once with UNAVAILABLE (nginx: "no live
// upstreams"; open-source nginx has no queue).
func TestMaxConnsUnderLoad(t *testing.T) {
	for _, method := range []string{"", "least_conn", "random two least_conn", "hash $request_uri"} {
		t.Run("method="+method, func(t *testing.T) {
			const total, limit = 1000, 40
			var release = make(chan struct{})
			var inflight [3]atomic.Int64
			var peak [3]atomic.Int64
			var finished atomic.Int64
			var bs []*backend
			for i := range 3 {
				hold := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
					n := inflight[i].Add(1)
					defer inflight[i].Add(-1)
					for p := peak[i].Load(); n > p && !peak[i].CompareAndSwap(p, n); p = peak[i].Load() {
					}
					select {
					case <-release:
					case <-time.After(5 * time.Second):
					case <-ctx.Done():
					}
					return h(ctx, req)
				}
				bs = append(bs, startBackend(t, fmt.Sprintf("b%d", i+1), grpc.UnaryInterceptor(hold)))
			}
			p := fmt.Sprintf("max_conns=%d", limit)
			addr := methodSite(t, method, bs, p, p, p)
			clients := make([]interface {
				EmptyCall(context.Context, *testpb.Empty, ...grpc.CallOption) (*testpb.Empty, error)
			}, 10)
			for i := range clients {
				clients[i] = client(t, addr)
			}
			ctx := testCtx(t, 60*time.Second)
			var ok, unavailable, other atomic.Int64
			var wg sync.WaitGroup
			for i := range total {
				tc := clients[i%len(clients)]
				wg.Go(func() {
					_, err := tc.EmptyCall(ctx, &testpb.Empty{})
					switch status.Code(err) {
					case codes.OK:
						ok.Add(1)
					case codes.Unavailable:
						unavailable.Add(1)
					default:
						other.Add(1)
						t.Errorf("call: %v", err)
					}
					if finished.Add(1) == total-3*limit {
						close(release) // every call not held has its answer
					}
				})
			}
			wg.Wait()
			for i := range peak {
				if n := peak[i].Load(); n > limit {
					t.Errorf("backend b%d held %d calls at once, max_conns=%d", i+1, n, limit)
				}
			}
			t.Logf("%d ok, %d unavailable; peaks %d %d %d", ok.Load(), unavailable.Load(), peak[0].Load(), peak[1].Load(), peak[2].Load())
			if ok.Load() < 3*limit || ok.Load()+unavailable.Load() != total {
				t.Errorf("%d ok, %d unavailable of %d calls: want at least %d ok and the rest unavailable", ok.Load(), unavailable.Load(), total, 3*limit)
			}
		})
	}
}

// TestKillBackendUnderLoad: one of three backends is killed while calls
// flow. With `grpc_next_upstream error timeout; grpc_next_upstream_tries
// 3;` a call that was not yet sent anywhere never fails: only the calls in
// flight on the killed backend may (they were sent); every call started
// after the proxy saw the connection die succeeds, served by the others.
func TestKillBackendUnderLoad(t *testing.T) {
	bs := startBackends(t, 3)
	addr := freeAddr(t)
	startProxy(t, upstreamBlock("backends", bs)+fmt.Sprintf(`
server {
    listen %s http2;
    location / {
        grpc_pass grpc://backends;
        grpc_next_upstream error timeout;
        grpc_next_upstream_tries 3;
    }
}
`, addr))
	const workers = 16
	clients := make([]interface {
		UnaryCall(context.Context, *testpb.SimpleRequest, ...grpc.CallOption) (*testpb.SimpleResponse, error)
	}, 4)
	for i := range clients {
		clients[i] = client(t, addr)
	}
	ctx := testCtx(t, 30*time.Second)
	var killedAt atomic.Int64 // unix ns when kill returned
	stop := make(chan struct{})
	type failure struct {
		start time.Time
		err   error
	}
	var mu sync.Mutex
	var failures []failure
	var calls atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		tc := clients[w%len(clients)]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				_, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true, ResponseSize: 10})
				calls.Add(1)
				if err != nil {
					mu.Lock()
					failures = append(failures, failure{start, err})
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(400 * time.Millisecond)
	servedBefore := bs[1].svc.Unary()
	bs[1].kill()
	killedAt.Store(time.Now().UnixNano())
	time.Sleep(800 * time.Millisecond)
	close(stop)
	wg.Wait()

	// The proxy learns that the killed backend's connections are gone
	// within a few milliseconds; calls started later were sent nowhere
	// before their attempt on it failed.
	settled := time.Unix(0, killedAt.Load()).Add(100 * time.Millisecond)
	late := 0
	for _, f := range failures {
		if f.start.After(settled) {
			late++
			t.Errorf("call started %v after the kill failed: %v", f.start.Sub(time.Unix(0, killedAt.Load())), f.err)
		}
	}
	t.Logf("%d calls, %d failed (in flight at the kill), killed backend had served %d", calls.Load(), len(failures), servedBefore)
	if len(failures) > workers {
		t.Errorf("%d calls failed, more than the %d that can be in flight", len(failures), workers)
	}
	if servedBefore == 0 {
		t.Error("the killed backend served nothing before: the test did not load it")
	}
}

// TestBackupOnlyWhenPrimariesDown: a backup server takes no call while a
// primary is up, and takes them all once every primary is down.
func TestBackupOnlyWhenPrimariesDown(t *testing.T) {
	bs := startBackends(t, 3)
	addr := methodSite(t, "", bs, "", "", "backup")
	tc := client(t, addr)
	ctx := testCtx(t, 30*time.Second)
	serve := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			r, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true})
			if err != nil {
				t.Fatal(err)
			}
			got[r.GetServerId()]++
		}
		return got
	}
	if got := serve(20); got["b3"] != 0 || got["b1"] != 10 || got["b2"] != 10 {
		t.Fatalf("primaries up: %v", got)
	}
	// A call written to a connection in the instant before the proxy
	// reads its end was sent and is not retried: wait for the proxy to
	// see the kill.
	bs[0].kill()
	time.Sleep(100 * time.Millisecond)
	if got := serve(20); got["b3"] != 0 || got["b2"] != 20 {
		t.Fatalf("one primary up: %v", got)
	}
	bs[1].kill()
	time.Sleep(100 * time.Millisecond)
	if got := serve(20); got["b3"] != 20 {
		t.Fatalf("primaries down: %v", got)
	}
}
