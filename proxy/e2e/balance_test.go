package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// TestPerStreamBalancing sends every call over ONE client connection and
// checks that the proxy spread them over the backends per call, in exactly
// the proportions of round robin with the configured weights.
func TestPerStreamBalancing(t *testing.T) {
	cases := []struct {
		name    string
		weights []int
		calls   int // a multiple of the weight sum, so the split is exact
	}{
		{"two equal", []int{1, 1}, 1000},
		{"weights 5,1,1", []int{5, 1, 1}, 700},
		{"weights 3,2,1", []int{3, 2, 1}, 600},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bs := startBackends(t, len(c.weights))
			params := make([]string, len(c.weights))
			sum := 0
			for i, w := range c.weights {
				params[i] = fmt.Sprintf("weight=%d", w)
				sum += w
			}
			addr, _ := grpcSite(t, bs, params...)
			tc := client(t, addr)
			ctx := testCtx(t, 60*time.Second)

			got := map[string]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			calls := make(chan struct{})
			for range 8 {
				wg.Go(func() {
					for range calls {
						r, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true})
						mu.Lock()
						if err != nil {
							got["error: "+err.Error()]++
						} else {
							got[r.GetServerId()]++
						}
						mu.Unlock()
					}
				})
			}
			for range c.calls {
				calls <- struct{}{}
			}
			close(calls)
			wg.Wait()

			want := map[string]int{}
			for i, w := range c.weights {
				want[bs[i].name] = c.calls / sum * w
			}
			t.Logf("%d calls on one connection: %v", c.calls, got)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("split = %v, want %v", got, want)
			}
			for _, b := range bs {
				if n := b.svc.Unary(); n != int64(want[b.name]) {
					t.Errorf("backend %s counted %d calls, want %d", b.name, n, want[b.name])
				}
			}
		})
	}
}
