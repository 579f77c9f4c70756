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
	"time"
)

// handshakes runs new full TLS handshakes (no session resumption, ALPN h2)
// against addr from c goroutines for t, and prints "HANDSHAKES_PER_S
// HANDSHAKES ERRORS". Each connection closes right after its handshake.
func handshakes(args []string) error {
	fs := flag.NewFlagSet("handshake", flag.ExitOnError)
	addr := fs.String("addr", "", "host:port of a TLS listener")
	c := fs.Int("c", 8, "concurrent handshakes")
	d := fs.Duration("t", 5*time.Second, "how long")
	tls12 := fs.Bool("tls12", false, "TLS 1.2 instead of 1.3")
	_ = fs.Parse(args)
	if *addr == "" {
		return fmt.Errorf("-addr is required")
	}
	// No ML-KEM: Go would offer X25519MLKEM768 first, which only gproxy
	// (Go) accepts, making its handshakes dearer than the OpenSSL peers'.
	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, ServerName: "localhost",
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}}
	if *tls12 {
		cfg.MaxVersion = tls.VersionTLS12
	}
	ctx, cancel := context.WithTimeout(context.Background(), *d)
	defer cancel()
	var ok, bad atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range *c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dl := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
			for ctx.Err() == nil {
				conn, err := dl.DialContext(ctx, "tcp", *addr)
				if err != nil {
					if ctx.Err() == nil {
						bad.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
					continue
				}
				ok.Add(1)
				conn.Close()
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if e, _ := firstErr.Load().(string); e != "" {
		fmt.Fprintf(os.Stderr, "benchtool handshake: %d failed, the first: %s\n", bad.Load(), e)
	}
	fmt.Printf("%.0f %d %d\n", float64(ok.Load())/secs, ok.Load(), bad.Load())
	return nil
}
