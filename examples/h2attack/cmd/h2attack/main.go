// Command h2attack runs one of package h2attack's hostile HTTP/2 clients
// against an h2c address on loopback for a bounded time, optionally while
// sampling a proxy process's peak RSS, and prints one result line.
//
//	h2attack -attack ping -addr 127.0.0.1:8080 -conns 4 -for 10s -pid 1234
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gproxy/gproxy/examples/h2attack"
)

func main() {
	name := flag.String("attack", "", "attack to run: settings, ping, zero-window, idle, rapid-reset, hpack-bomb, continuation")
	addr := flag.String("addr", "127.0.0.1:8080", "proxy h2c address (loopback only)")
	conns := flag.Int("conns", 4, "attacking connections")
	dur := flag.Duration("for", 10*time.Second, "how long to attack")
	pid := flag.Int("pid", 0, "proxy process whose peak VmRSS to report")
	flag.Parse()
	a, ok := h2attack.Find(*name)
	if !ok {
		fmt.Fprintf(os.Stderr, "h2attack: unknown attack %q\n", *name)
		os.Exit(2)
	}
	if !strings.HasPrefix(*addr, "127.") && !strings.HasPrefix(*addr, "[::1]") && !strings.HasPrefix(*addr, "localhost:") {
		fmt.Fprintln(os.Stderr, "h2attack: loopback addresses only")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
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
