// Command democlient opens ONE client connection to a gRPC address, sends N
// unary calls over it, and prints how many calls each backend served. Behind
// gproxy the calls spread over the backends even though there is a single
// connection, because gproxy balances each stream, not each connection.
//
//	go run ./examples/democlient -addr 127.0.0.1:30051 -n 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:30051", "gRPC address (the proxy)")
	n := flag.Int("n", 1000, "number of unary calls")
	par := flag.Int("c", 1, "calls in flight at once (all on the one connection)")
	timeout := flag.Duration("timeout", 30*time.Second, "bound on the whole run")
	flag.Parse()

	if err := run(*addr, *n, *par, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "democlient:", err)
		os.Exit(1)
	}
}

func run(addr string, n, par int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// One ClientConn with the default pick_first policy is one HTTP/2
	// connection: any spreading seen below is the proxy's doing.
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	tc := testgrpc.NewTestServiceClient(cc)

	var (
		mu     sync.Mutex
		counts = map[string]int{}
		failed = map[string]int{}
		wg     sync.WaitGroup
		next   = make(chan struct{})
	)
	start := time.Now()
	for range max(par, 1) {
		wg.Go(func() {
			for range next {
				r, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true})
				mu.Lock()
				if err != nil {
					failed[err.Error()]++
				} else {
					counts[r.GetServerId()]++
				}
				mu.Unlock()
			}
		})
	}
	for range n {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)

	fmt.Printf("%d calls over one connection to %s in %v\n", n, addr, elapsed.Round(time.Millisecond))
	for _, k := range sortedKeys(counts) {
		fmt.Printf("  %-20s %6d\n", k, counts[k])
	}
	for _, k := range sortedKeys(failed) {
		fmt.Printf("  FAILED %6d: %s\n", failed[k], k)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d kinds of failure", len(failed))
	}
	return nil
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
