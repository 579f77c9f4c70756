// Command h2attack runs one of package h2attack's hostile HTTP/2 clients
// against an h2c address on loopback for a bounded time, optionally while
// sampling a proxy process's peak RSS, and prints one result line
// (SIGINT or SIGTERM ends it early, the line still printed).
//
//	h2attack -attack ping -addr 127.0.0.1:8080 -conns 4 -for 10s -pid 1234
//
// With -idle N it instead measures what an idle client connection costs
// the proxy -pid (issue 15's measure): N connections each make one gRPC
// call (grpc.testing.TestService/UnaryCall) and sit idle for -settle; it
// prints the growth of the proxy's VmRSS per connection.
//
//	h2attack -idle 2000 -addr 127.0.0.1:8080 -pid 1234
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gproxy/gproxy/examples/h2attack"
)

func main() {
	name := flag.String("attack", "", "attack to run: settings, ping, zero-window, idle, rapid-reset, hpack-bomb, continuation")
	addr := flag.String("addr", "127.0.0.1:8080", "proxy h2c address (loopback only)")
	conns := flag.Int("conns", 4, "attacking connections")
	dur := flag.Duration("for", 10*time.Second, "how long to attack")
	pid := flag.Int("pid", 0, "proxy process whose peak VmRSS to report")
	idle := flag.Int("idle", 0, "measure RSS per idle connection over this many connections (one gRPC call each) instead of attacking")
	settle := flag.Duration("settle", 5*time.Second, "with -idle: how long the connections sit idle before RSS is read")
	flag.Parse()
	if *idle > 0 {
		os.Exit(idleRSS(*addr, *pid, *idle, *settle))
	}
	a, ok := h2attack.Find(*name)
	if !ok {
		fmt.Fprintf(os.Stderr, "h2attack: unknown attack %q\n", *name)
		os.Exit(2)
	}
	if !loopback(*addr) {
		fmt.Fprintln(os.Stderr, "h2attack: loopback addresses only")
		os.Exit(2)
	}
	// SIGINT or SIGTERM ends the attack early, results printed.
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sig, *dur)
	defer cancel()
	peak := make(chan int64, 1)
	go func() {
		var max int64
		for ctx.Err() == nil {
			if *pid > 0 {
				max = maxInt(max, rssKiB(*pid))
			}
			time.Sleep(50 * time.Millisecond)
		}
		peak <- max
	}()
	r := a.Run(ctx, *addr, *conns)
	fmt.Printf("attack=%s conns=%d frames=%d closed_by_server=%d peak_rss_kib=%d\n", a.Name, r.Conns, r.Frames, r.Closed, <-peak)
}

// idleRSS runs the -idle measurement and returns the exit status.
func idleRSS(addr string, pid, n int, settle time.Duration) int {
	if pid <= 0 {
		fmt.Fprintln(os.Stderr, "h2attack: -idle needs -pid")
		return 2
	}
	if !loopback(addr) {
		fmt.Fprintln(os.Stderr, "h2attack: loopback addresses only")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := rssKiB(pid)
	closeAll, err := h2attack.IdleAfterCall(ctx, addr, n)
	if err != nil {
		fmt.Fprintf(os.Stderr, "h2attack: %v\n", err)
		return 1
	}
	defer closeAll()
	time.Sleep(settle)
	after := rssKiB(pid)
	fmt.Printf("idle_conns=%d rss_before_kib=%d rss_after_kib=%d kib_per_conn=%.1f\n", n, before, after, float64(after-before)/float64(n))
	return 0
}

func loopback(addr string) bool {
	return strings.HasPrefix(addr, "127.") || strings.HasPrefix(addr, "[::1]") || strings.HasPrefix(addr, "localhost:")
}

func maxInt(a, b int64) int64 {
	if b > a {
		return b
	}
	return a
}

// rssKiB reads VmRSS of pid from /proc.
func rssKiB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}
