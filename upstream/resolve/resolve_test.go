package resolve

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gproxy/gproxy/proxy/nettest"
	"github.com/gproxy/gproxy/upstream/resolve/dnstest"
)

func TestLookupHost(t *testing.T) {
	d := dnstest.Start(t)
	d.Set("svc.test", 7, "A 127.0.0.2", "A 127.0.0.3", "AAAA ::1")
	r := &Resolver{Servers: []string{d.Addr}, Timeout: time.Second, IPv6: true}
	ips, ttl, err := r.LookupHost(context.Background(), "svc.test")
	slices.Sort(ips)
	if err != nil || !slices.Equal(ips, []string{"127.0.0.2", "127.0.0.3", "::1"}) || ttl != 7*time.Second {
		t.Fatalf("LookupHost = %v %v %v", ips, ttl, err)
	}
	r.IPv6 = false
	r.Valid = 2 * time.Second
	ips, ttl, err = r.LookupHost(context.Background(), "svc.test")
	if err != nil || len(ips) != 2 || ttl != 2*time.Second {
		t.Fatalf("ipv6=off valid=2s: %v %v %v", ips, ttl, err)
	}
	if _, _, err := r.LookupHost(context.Background(), "nope.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("NXDOMAIN: %v", err)
	}
}

func TestLookupDeadServerFallsBack(t *testing.T) {
	d := dnstest.Start(t)
	d.Set("svc.test", 5, "A 127.0.0.9")
	// The first server never answers (a UDP port nobody reads).
	pc, err := nettest.ListenPacket("udp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	r := &Resolver{Servers: []string{pc.LocalAddr().String(), d.Addr}, Timeout: 200 * time.Millisecond}
	for range 2 { // whichever server is asked first
		ips, _, err := r.LookupHost(context.Background(), "svc.test")
		if err != nil || !slices.Equal(ips, []string{"127.0.0.9"}) {
			t.Fatalf("fallback: %v %v", ips, err)
		}
	}
}

func TestLookupSRV(t *testing.T) {
	d := dnstest.Start(t)
	d.Set("_grpc._tcp.svc.test", 5, "SRV 0 5 50051 a.svc.test.", "SRV 0 5 50052 b.svc.test.", "SRV 1 5 50053 c.svc.test.")
	d.Set("a.svc.test", 5, "A 127.0.0.2")
	d.Set("b.svc.test", 5, "A 127.0.0.3")
	d.Set("c.svc.test", 5, "A 127.0.0.4")
	r := &Resolver{Servers: []string{d.Addr}, Timeout: time.Second}
	var got []string
	w := &Watch{Resolver: r, Host: "svc.test", Service: "grpc", Update: func(a []string) { got = a }}
	w.Resolve(context.Background())
	// Only the best priority's targets are servers.
	if !slices.Equal(got, []string{"127.0.0.2:50051", "127.0.0.3:50052"}) {
		t.Fatalf("SRV addresses = %v", got)
	}
	if n := SRVName("_grpc._tcp", "svc.test"); n != "_grpc._tcp.svc.test" {
		t.Errorf("SRVName with dots = %q", n)
	}
}

func TestWatchFollowsRecords(t *testing.T) {
	d := dnstest.Start(t)
	d.Set("svc.test", 1, "A 127.0.0.2")
	r := &Resolver{Servers: []string{d.Addr}, Timeout: time.Second, Valid: 200 * time.Millisecond}
	var mu sync.Mutex
	var sets [][]string
	w := &Watch{Resolver: r, Host: "svc.test", Port: "50051", Update: func(a []string) {
		mu.Lock()
		sets = append(sets, a)
		mu.Unlock()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	wait := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			last := []string{"none"}
			if len(sets) > 0 {
				last = sets[len(sets)-1]
			}
			mu.Unlock()
			if slices.Equal(last, want) || (len(want) == 0 && last != nil && len(last) == 0) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("addresses never became %v (updates %v)", want, sets)
	}
	wait("127.0.0.2:50051")
	d.Set("svc.test", 1, "A 127.0.0.2", "A 127.0.0.3")
	wait("127.0.0.2:50051", "127.0.0.3:50051")
	d.Set("svc.test", 1, "A 127.0.0.3")
	wait("127.0.0.3:50051")
	d.Set("svc.test", 1)
	wait()
	mu.Lock()
	n := len(sets)
	mu.Unlock()
	if n != 4 {
		t.Errorf("%d updates, want 4 (an unchanged answer is no update): %v", n, sets)
	}
}
