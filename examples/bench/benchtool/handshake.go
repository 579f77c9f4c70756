package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// handshakes runs new full TLS handshakes (no session resumption, ALPN h2)
// against addr from c goroutines, and prints "HANDSHAKES_PER_S HANDSHAKES
// ERRORS CLIENT_US": completed handshakes per second, their count, the
// connections that failed, and this client's own CPU time per completed
// handshake in microseconds (when it nears 1e6/HANDSHAKES_PER_S times the
// client's cores, the client, not the server, sets the rate). Each
// connection closes right after its handshake.
//
// Goroutines start new handshakes for t; the ones begun before then are
// finished and counted (each is bounded by the 5 s dial timeout), and the
// rate is over the time until the last one ends. So every handshake the
// server did in that window is counted, and none is cut short by the end of
// the run and reported as a failure.
func handshakes(args []string) error {
	fs := flag.NewFlagSet("handshake", flag.ExitOnError)
	addr := fs.String("addr", "", "host:port of a TLS listener")
	c := fs.Int("c", 8, "concurrent handshakes")
	d := fs.Duration("t", 5*time.Second, "how long to start new handshakes")
	tls12 := fs.Bool("tls12", false, "TLS 1.2 instead of 1.3")
	_ = fs.Parse(args)
	if *addr == "" {
		return fmt.Errorf("-addr is required")
	}
	res := runHandshakes(*addr, *c, *d, *tls12)
	if res.firstErr != nil {
		fmt.Fprintf(os.Stderr, "benchtool handshake: %d failed, the first: %v\n", res.failed, res.firstErr)
	}
	fmt.Printf("%.0f %d %d %.0f\n", res.perSecond, res.done, res.failed, res.clientUS)
	return nil
}

// hsResult is what a handshake run measured.
type hsResult struct {
	done, failed int64   // completed handshakes; connections that failed
	perSecond    float64 // done over the run's whole time
	clientUS     float64 // this process's CPU microseconds per completed handshake
	firstErr     error
}

// runHandshakes starts full handshakes with addr from c goroutines for d,
// then waits for those under way.
func runHandshakes(addr string, c int, d time.Duration, tls12 bool) hsResult {
	// No ML-KEM: Go would offer X25519MLKEM768 first, which only gproxy
	// (Go) accepts, making its handshakes dearer than the OpenSSL peers'.
	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, ServerName: "localhost",
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}}
	if tls12 {
		cfg.MaxVersion = tls.VersionTLS12
	}
	// The run's end is a flag, not the dial's context: with a context
	// deadline, every dial begun between that deadline and the moment the
	// context's timer fires fails at once with "i/o timeout" (the dialer
	// derives an already expired deadline), and the loop spun there,
	// counting thousands of failures that never reached the server.
	var stop atomic.Bool
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	var ok, bad atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dl := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
			for !stop.Load() {
				conn, err := dl.DialContext(context.Background(), "tcp", addr)
				if err != nil {
					bad.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				ok.Add(1)
				conn.Close()
			}
		}()
	}
	wg.Wait()
	res := hsResult{done: ok.Load(), failed: bad.Load()}
	res.perSecond = float64(res.done) / time.Since(start).Seconds()
	if res.done > 0 {
		res.clientUS = (cpuTime() - cpu0).Seconds() / float64(res.done) * 1e6
	}
	if e := firstErr.Load(); e != nil {
		res.firstErr = *e
	}
	return res
}

// cpuTime is this process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
