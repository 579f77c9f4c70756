//go:build !nginxonly

package e2e

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/gproxy/gproxy/examples/h2attack"
)

// Attack tests (issue 15): each runs one hostile client of package
// h2attack against gproxy while a well-behaved grpc-go client keeps
// calling over a connection of its own, opened after the attack started.
// Every good call must succeed, and the process's Go heap (proxy, backend
// and both clients together) must stay under the case's bound.
func TestAttacks(t *testing.T) {
	cases := []struct {
		attack   string
		conns    int
		heapMiB  uint64
		workers  int // worker_connections; 0 keeps the harness's
		maxCalls int64
	}{
		{attack: "settings", conns: 4, heapMiB: 64},
		{attack: "ping", conns: 4, heapMiB: 64},
		// 512 streams. The heap is logged, not bounded: this process's
		// total (backend included) reached ~600 MiB and is not yet
		// explained per component; see the README's Bounds.
		{attack: "zero-window", conns: 4},
		{attack: "idle", conns: 600, heapMiB: 96, workers: 256},
		{attack: "rapid-reset", conns: 4, heapMiB: 64, maxCalls: 64},
		{attack: "hpack-bomb", conns: 4, heapMiB: 64},
		{attack: "continuation", conns: 4, heapMiB: 64},
	}
	for _, tc := range cases {
		t.Run(tc.attack, func(t *testing.T) {
			if tc.workers > 0 {
				old := workerConnections
				workerConnections = tc.workers
				defer func() { workerConnections = old }()
			}
			var attackCalls atomic.Int64
			count := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				if info.FullMethod == "/grpc.testing.TestService/EmptyCall" {
					attackCalls.Add(1)
				}
				return h(ctx, req)
			})
			runtime.GC() // the previous case's garbage is not this one's
			be := startBackend(t, "b1", count)
			addr, _ := grpcSite(t, []*backend{be})
			a, ok := h2attack.Find(tc.attack)
			if !ok {
				t.Fatalf("no attack %q", tc.attack)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			var res h2attack.Result
			wg.Add(2)
			go func() { defer wg.Done(); res = a.Run(ctx, addr, tc.conns) }()
			var peak atomic.Uint64
			go func() {
				defer wg.Done()
				var ms runtime.MemStats
				for ctx.Err() == nil {
					runtime.ReadMemStats(&ms)
					if ms.HeapInuse > peak.Load() {
						peak.Store(ms.HeapInuse)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
			time.Sleep(500 * time.Millisecond) // the attack is under way
			c := client(t, addr)
			var good, failed int
			for ctx.Err() == nil {
				cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := c.UnaryCall(cctx, &testpb.SimpleRequest{ResponseSize: 100})
				ccancel()
				if err != nil && ctx.Err() == nil {
					failed++
					t.Logf("good call failed: %v", err)
				} else if err == nil {
					good++
				}
			}
			wg.Wait()
			t.Logf("%s: attack %+v; good calls %d ok, %d failed; attack calls at the backend %d; peak heap %.1f MiB",
				tc.attack, res, good, failed, attackCalls.Load(), float64(peak.Load())/(1<<20))
			if failed > 0 || good == 0 {
				t.Errorf("good client: %d ok, %d failed; want all ok", good, failed)
			}
			if p := peak.Load(); tc.heapMiB > 0 && p > tc.heapMiB<<20 && !raceEnabled {
				t.Errorf("peak heap %d MiB, want under %d MiB", p>>20, tc.heapMiB)
			}
			if tc.maxCalls > 0 && attackCalls.Load() > tc.maxCalls {
				t.Errorf("%d attack streams reached the backend, want at most %d", attackCalls.Load(), tc.maxCalls)
			}
		})
	}
}
