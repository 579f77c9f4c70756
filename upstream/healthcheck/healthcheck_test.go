package healthcheck

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/nettest"
)

// backend is a grpc-go server on loopback, with grpc-go's health service
// unless bare.
type backend struct {
	addr   string
	srv    *grpc.Server
	health *health.Server
}

func startBackend(t *testing.T, addr string, bare bool) *backend {
	t.Helper()
	var ln net.Listener
	var err error
	if addr == "" {
		ln, err = nettest.Listen("tcp", "127.0.0.1")
	} else {
		// A restart on the same port: the old socket may linger briefly.
		for i := 0; i < 50; i++ {
			if ln, err = net.Listen("tcp", addr); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String(), srv: grpc.NewServer()}
	if !bare {
		b.health = health.NewServer()
		healthpb.RegisterHealthServer(b.srv, b.health)
	}
	go b.srv.Serve(ln)
	t.Cleanup(b.srv.Stop)
	return b
}

func probe(addr string) *Probe {
	return &Probe{Network: "tcp", Addr: addr, OKStatus: -1, ConnectTimeout: time.Second, ReadTimeout: time.Second}
}

func TestProbeStatuses(t *testing.T) {
	b := startBackend(t, "", false)
	bare := startBackend(t, "", true)
	ctx := context.Background()

	if err := probe(b.addr).Run(ctx); err != nil {
		t.Fatalf("SERVING server: %v", err)
	}
	b.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := probe(b.addr).Run(ctx); err == nil || !strings.Contains(err.Error(), "NOT_SERVING") {
		t.Fatalf("NOT_SERVING server: %v", err)
	}

	// grpc_service= names the service asked about.
	p := probe(b.addr)
	p.Service = "pkg.Svc"
	if err := p.Run(ctx); err == nil || !strings.Contains(err.Error(), "grpc-status 5 while checking gRPC health") {
		t.Fatalf("unknown service: %v, want NOT_FOUND", err)
	}
	b.health.SetServingStatus("pkg.Svc", healthpb.HealthCheckResponse_SERVING)
	if err := p.Run(ctx); err != nil {
		t.Fatalf("SERVING service on a NOT_SERVING server: %v", err)
	}

	// A server without the health service answers UNIMPLEMENTED: a
	// failure, unless grpc_status=12 says it counts as healthy.
	p = probe(bare.addr)
	if err := p.Run(ctx); err == nil || !strings.Contains(err.Error(), "grpc-status 12") {
		t.Fatalf("no health service: %v", err)
	}
	p.OKStatus = 12
	if err := p.Run(ctx); err != nil {
		t.Fatalf("grpc_status=12: %v", err)
	}

	// Nobody listening.
	dead := nettest.Addr(t)
	if err := probe(dead).Run(ctx); err == nil || err.Error() != "connect() failed (111: Connection refused) while connecting to upstream" {
		t.Fatalf("dead server: %v", err)
	}
}

func TestRequestEncoding(t *testing.T) {
	if got := request(""); string(got) != "\x00\x00\x00\x00\x00" {
		t.Errorf("empty request = %q", got)
	}
	if got := request("a.B"); string(got) != "\x00\x00\x00\x00\x05\x0a\x03a.B" {
		t.Errorf("request(a.B) = %q", got)
	}
	for _, tc := range []struct {
		in   string
		want ServingStatus
		ok   bool
	}{
		{"\x00\x00\x00\x00\x02\x08\x01", Serving, true},
		{"\x00\x00\x00\x00\x00", Unknown, true},
		{"\x00\x00\x00\x00\x04\x12\x00\x08\x02", NotServing, true}, // unknown field first
		{"\x01\x00\x00\x00\x02\x08\x01", 0, false},
		{"\x00\x00\x00\x00\x09\x08\x01", 0, false},
		{"\x00\x00", 0, false},
	} {
		got, err := response([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("response(%q) = %v, %v", tc.in, got, err)
		}
	}
}

type events struct {
	mu  sync.Mutex
	log []string
	ch  chan struct{}
}

func (e *events) report(t Target, healthy bool, _ error) {
	e.mu.Lock()
	s := "down " + t.Addr
	if healthy {
		s = "up " + t.Addr
	}
	e.log = append(e.log, s)
	e.mu.Unlock()
	select {
	case e.ch <- struct{}{}:
	default:
	}
}

// wait waits up to d for the event, and returns how long it took.
func (e *events) wait(t *testing.T, want string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.After(d)
	for {
		e.mu.Lock()
		for i, s := range e.log {
			if s == want {
				e.log = append(e.log[:i], e.log[i+1:]...)
				e.mu.Unlock()
				return time.Since(start)
			}
		}
		e.mu.Unlock()
		select {
		case <-e.ch:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %q within %v (events %v)", want, d, e.log)
		}
	}
}

func TestCheckerFollowsServer(t *testing.T) {
	b := startBackend(t, "", false)
	other := startBackend(t, "", false)
	ev := &events{ch: make(chan struct{}, 1)}
	c := &Checker{
		Config:         config.HealthCheck{Interval: time.Second, Fails: 1, Passes: 1, GRPCStatus: -1},
		ConnectTimeout: time.Second, ReadTimeout: time.Second,
		Targets: func() []Target {
			return []Target{{Key: 1, Network: "tcp", Addr: b.addr}, {Key: 2, Network: "tcp", Addr: other.addr}}
		},
		Report: ev.report,
	}
	c.Start()
	defer c.Stop()
	// The first check runs at once (a loaded machine may take a while).
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		h, checked := c.Healthy(1)
		if checked {
			if !h {
				t.Fatal("healthy server found unhealthy")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no check of the healthy server within 2s")
		}
	}

	b.srv.Stop()
	if d := ev.wait(t, "down "+b.addr, 2*time.Second); d > 2*time.Second {
		t.Fatalf("out after %v", d)
	}
	restarted := startBackend(t, b.addr, false)
	ev.wait(t, "up "+b.addr, 2*time.Second)

	restarted.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	ev.wait(t, "down "+b.addr, 2*time.Second)
	restarted.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	ev.wait(t, "up "+b.addr, 2*time.Second)

	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, s := range ev.log {
		if strings.HasSuffix(s, other.addr) {
			t.Errorf("the healthy server changed: %v", ev.log)
		}
	}
}

func TestCheckerFailsPassesMandatory(t *testing.T) {
	b := startBackend(t, "", false)
	ev := &events{ch: make(chan struct{}, 1)}
	c := &Checker{
		Config: config.HealthCheck{Interval: 100 * time.Millisecond, Fails: 3, Passes: 2, GRPCStatus: -1, Mandatory: true},
		Targets: func() []Target {
			return []Target{{Key: 1, Network: "tcp", Addr: b.addr}}
		},
		Report: ev.report,
	}
	c.Start()
	defer c.Stop()
	// Mandatory: "checking" until the first pass, which is enough.
	ev.wait(t, "up "+b.addr, time.Second)

	b.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	start := time.Now()
	ev.wait(t, "down "+b.addr, 2*time.Second)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("down after %v: fails=3 at 100ms needs three checks", d)
	}
	b.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	start = time.Now()
	ev.wait(t, "up "+b.addr, 2*time.Second)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("up after %v: passes=2 needs two checks", d)
	}
}
