//go:build !nginxonly

package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/gproxy/gproxy/examples/h2attack"
)

var heapProfile = flag.String("e2e.heapprofile", "", "write a heap profile at the attack tests' peak to this file")

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
		// maxPulledKiB bounds what the backend may send in all (the
		// zero-window case: 4 KiB per stream plus the good calls).
		maxPulledKiB int64
	}{
		{attack: "settings", conns: 4, heapMiB: 64},
		{attack: "ping", conns: 4, heapMiB: 64},
		// 512 streams asking 64 KiB each. In-process the heap is the
		// backend's (grpc-go keeps each marshalled response), so the
		// bound is on what gproxy pulled from it: 4 KiB and a few
		// frame headers per stream, plus the good calls' few KiB each.
		{attack: "zero-window", conns: 4, maxPulledKiB: 512*5 + 4096},
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
			runtime.GC() // the previous case's garbage (twice: sync.Pools keep a victim generation)
			runtime.GC()
			be := startBackend(t, "b1", count)
			be.ln.count.Store(true)
			addr, p := attackSite(t, be)
			a, ok := h2attack.Find(tc.attack)
			if !ok {
				t.Fatalf("no attack %q", tc.attack)
			}
			// The attack lasts until the good client is done.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			var res h2attack.Result
			wg.Add(2)
			if p.anon != nil {
				// A proxy process meets an attacker process, as it would
				// meet an attacking machine: attack goroutines in this
				// process would compete with the good client and the
				// backend for its scheduler and slow them whatever the
				// proxy does.
				go func() { defer wg.Done(); res = runAttackProcess(t, ctx, tc.attack, addr, tc.conns) }()
			} else {
				go func() { defer wg.Done(); res = a.Run(ctx, addr, tc.conns) }()
			}
			var peak, peakAnon atomic.Uint64
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					if p.anon != nil {
						if m := p.anon(); m > peakAnon.Load() {
							peakAnon.Store(m)
						}
					}
					m, _ := p.mem()
					if m > peak.Load() {
						peak.Store(m)
						if *heapProfile != "" && m > 100<<20 {
							if f, err := os.Create(*heapProfile); err == nil {
								pprof.WriteHeapProfile(f)
								f.Close()
							}
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
			time.Sleep(500 * time.Millisecond) // the attack is under way
			c := client(t, addr)
			// The good client calls for 2.5 s, at least 3 times, each call
			// within 5 s. Its calls wait for a connection (wait-for-ready)
			// as a long-lived client's do: a proxy at worker_connections
			// may close its idle connection, as nginx does, and the call
			// then goes on the next one.
			var good, failed int
			for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end) || good+failed < 3; {
				cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := c.UnaryCall(cctx, &testpb.SimpleRequest{ResponseSize: 100}, grpc.WaitForReady(true))
				ccancel()
				if err != nil {
					failed++
					t.Logf("good call failed: %v", err)
				} else {
					good++
				}
			}
			cancel()
			wg.Wait()
			_, what := p.mem()
			pulled := be.ln.sent.Load()
			t.Logf("%s: attack %+v; good calls %d ok, %d failed; attack calls at the backend %d; backend sent %d KiB; peak %s %.1f MiB",
				tc.attack, res, good, failed, attackCalls.Load(), pulled>>10, what, float64(peak.Load())/(1<<20))
			// ATTACK-ROW is the line the README's table is made from.
			t.Logf("ATTACK-ROW | %s | %s | %d/%d | %.0f MiB | %.1f MiB |", tc.attack, p.kind, good, good+failed,
				float64(peak.Load())/(1<<20), float64(peakAnon.Load())/(1<<20))
			if !strings.HasPrefix(p.kind, "gproxy") {
				return // peers are measured, not judged
			}
			if failed > 0 || good == 0 {
				t.Errorf("good client: %d ok, %d failed; want all ok", good, failed)
			}
			if p := peak.Load(); tc.heapMiB > 0 && p > tc.heapMiB<<20 && !raceEnabled {
				t.Errorf("peak heap %d MiB, want under %d MiB", p>>20, tc.heapMiB)
			}
			if tc.maxPulledKiB > 0 && pulled>>10 > tc.maxPulledKiB {
				t.Errorf("the backend sent %d KiB, want at most %d KiB", pulled>>10, tc.maxPulledKiB)
			}
			if tc.maxCalls > 0 && attackCalls.Load() > tc.maxCalls {
				t.Errorf("%d attack streams reached the backend, want at most %d", attackCalls.Load(), tc.maxCalls)
			}
		})
	}
}

// attackSite starts the proxy chosen by -e2e.proxy in front of be, as
// grpcSite does; it also takes gproxy-process (the binary, for RSS) and
// haproxy.
func attackSite(t *testing.T, be *backend) (string, *proxyInstance) {
	t.Helper()
	return proxySite(t, *proxyFlag, be)
}

var h2attackBin struct {
	once sync.Once
	path string
	err  error
}

// runAttackProcess runs the h2attack command against addr until ctx ends,
// then stops it (SIGTERM) and returns what it reports.
func runAttackProcess(t *testing.T, ctx context.Context, attack, addr string, conns int) h2attack.Result {
	h2attackBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "gproxy-e2e-h2attack")
		if err != nil {
			h2attackBin.err = err
			return
		}
		h2attackBin.path = filepath.Join(dir, "h2attack")
		if out, err := exec.Command("go", "build", "-o", h2attackBin.path, "github.com/gproxy/gproxy/examples/h2attack/cmd/h2attack").CombinedOutput(); err != nil {
			h2attackBin.err = fmt.Errorf("go build h2attack: %v\n%s", err, out)
		}
	})
	var r h2attack.Result
	if h2attackBin.err != nil {
		t.Error(h2attackBin.err)
		return r
	}
	var out bytes.Buffer
	cmd := exec.Command(h2attackBin.path, "-attack", attack, "-addr", addr, "-conns", strconv.Itoa(conns), "-for", "1m")
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Error(err)
		return r
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Errorf("h2attack ended early: %v", err)
		return r
	case <-ctx.Done():
	}
	terminate(cmd.Process, done, 10*time.Second)
	for _, f := range strings.Fields(out.String()) {
		k, v, _ := strings.Cut(f, "=")
		n, _ := strconv.Atoi(v)
		switch k {
		case "conns":
			r.Conns = n
		case "frames":
			r.Frames = n
		case "closed_by_server":
			r.Closed = n
		}
	}
	return r
}
