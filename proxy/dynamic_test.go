package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/tlsconf/tlstest"
	"github.com/gproxy/gproxy/proxy/nettest"
	"github.com/gproxy/gproxy/upstream"
	"github.com/gproxy/gproxy/upstream/resolve/dnstest"
)

// hbackend is a grpc-go interop TestService with grpc-go's health service,
// counting the test calls it serves; it can be stopped and started again
// on the same address.
type hbackend struct {
	t      *testing.T
	addr   string
	calls  atomic.Int64
	mu     sync.Mutex
	srv    *grpc.Server
	health *health.Server
	// held, while set, keeps health checks waiting until it is closed.
	held atomic.Pointer[chan struct{}]
}

func startHBackend(t *testing.T, network, host string) *hbackend {
	t.Helper()
	ln, err := nettest.Listen(network, host)
	if err != nil {
		t.Fatal(err)
	}
	b := &hbackend{t: t, addr: ln.Addr().String()}
	b.serve(ln)
	t.Cleanup(b.stop)
	return b
}

func (b *hbackend) serve(ln net.Listener) {
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !strings.HasPrefix(info.FullMethod, "/grpc.health") {
			b.calls.Add(1)
		} else if held := b.held.Load(); held != nil {
			select {
			case <-*held:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return h(ctx, req)
	}))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
	b.mu.Lock()
	b.srv, b.health = srv, hs
	b.mu.Unlock()
	go srv.Serve(ln)
}

func (b *hbackend) stop() {
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	srv.Stop()
}

// restart serves again on the same address.
func (b *hbackend) restart() {
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", b.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	b.serve(ln)
}

func (b *hbackend) setStatus(service string, st healthpb.HealthCheckResponse_ServingStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.health.SetServingStatus(service, st)
}

// group returns the running group named name.
func group(t *testing.T, s *Server, name string) *upstream.Group {
	t.Helper()
	for u, g := range s.cur.Load().groups {
		if u.u.Name == name {
			return g
		}
	}
	t.Fatalf("no group %q", name)
	return nil
}

// healthyAddrs lists the addresses of the peers the group may pick, sorted
// by the group's order.
func healthyAddrs(g *upstream.Group) []string {
	var out []string
	for _, p := range g.Peers() {
		if p.Healthy() && !p.Down {
			out = append(out, p.Addr)
		}
	}
	return out
}

// waitFor polls cond every 10ms for at most d and returns how long it took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// load runs unary calls from workers until stop is closed, bounded by max
// calls; it counts the failed ones since the last reset.
type load struct {
	fails, ok atomic.Int64
	lastErr   atomic.Value
	wg        sync.WaitGroup
	stop      chan struct{}
}

func startLoad(t *testing.T, addr string, workers int) *load {
	cc := dial(t, addr)
	c := testgrpc.NewTestServiceClient(cc)
	l := &load{stop: make(chan struct{})}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for range 20000 {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
				cancel()
				if err != nil {
					l.fails.Add(1)
					l.lastErr.Store(err.Error())
				} else {
					l.ok.Add(1)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	t.Cleanup(l.end)
	return l
}

func (l *load) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func hcConf(port int, hc string, servers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "events {}\nhttp {\n  upstream u {\n    zone u 64k;\n    keepalive 32;\n")
	for _, s := range servers {
		fmt.Fprintf(&b, "    server %s;\n", s)
	}
	fmt.Fprintf(&b, "  }\n  server {\n    listen 127.0.0.1:%d http2;\n", port)
	fmt.Fprintf(&b, "    location / { grpc_pass grpc://u; grpc_connect_timeout 1s; grpc_read_timeout 1s; %s }\n  }\n}\n", hc)
	return b.String()
}

// TestHealthCheckKilledBackend: with `health_check interval=1s type=grpc`,
// one of three backends killed under load is out within 2 s, and back
// within 2 s of its restart; while it is out no call fails.
func TestHealthCheckKilledBackend(t *testing.T) {
	bs := []*hbackend{startHBackend(t, "tcp", "127.0.0.1"), startHBackend(t, "tcp", "127.0.0.1"), startHBackend(t, "tcp", "127.0.0.1")}
	port := freePort(t)
	s := startProxy(t, hcConf(port, "health_check interval=1s type=grpc;", bs[0].addr, bs[1].addr, bs[2].addr))
	g := group(t, s, "u")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	l := startLoad(t, addr, 4)
	waitFor(t, 2*time.Second, "load running on all three", func() bool {
		return bs[0].calls.Load() > 10 && bs[1].calls.Load() > 10 && bs[2].calls.Load() > 10
	})

	bs[1].stop()
	d := waitFor(t, 2*time.Second, "killed backend out", func() bool { return len(healthyAddrs(g)) == 2 })
	t.Logf("out after %v", d)
	l.fails.Store(0)
	before := bs[0].calls.Load() + bs[2].calls.Load()
	waitFor(t, 2*time.Second, "calls go on", func() bool { return bs[0].calls.Load()+bs[2].calls.Load() > before+100 })
	if n := l.fails.Load(); n != 0 {
		t.Errorf("%d calls failed while the dead backend was out: %v", n, l.lastErr.Load())
	}

	bs[1].restart()
	d = waitFor(t, 2*time.Second, "restarted backend back", func() bool { return len(healthyAddrs(g)) == 3 })
	t.Logf("back after %v", d)
	n := bs[1].calls.Load()
	waitFor(t, 2*time.Second, "restarted backend gets calls", func() bool { return bs[1].calls.Load() > n+10 })
	l.end()
	if l.ok.Load() == 0 {
		t.Fatal("no call succeeded")
	}
}

// TestHealthCheckNotServing: NOT_SERVING from grpc-go's health server takes
// a peer out; grpc_service= asks about one service; mandatory keeps a peer
// out until its first check passes.
func TestHealthCheckNotServing(t *testing.T) {
	b1, b2 := startHBackend(t, "tcp", "127.0.0.1"), startHBackend(t, "tcp", "127.0.0.1")
	port := freePort(t)
	s := startProxy(t, hcConf(port, "health_check interval=200ms mandatory type=grpc grpc_service=grpc.testing.TestService;", b1.addr, b2.addr))
	g := group(t, s, "u")
	// The service is unknown to both health servers (NOT_FOUND): with
	// mandatory, neither has ever passed.
	if got := healthyAddrs(g); len(got) != 0 {
		t.Fatalf("mandatory: healthy before any check passed: %v", got)
	}
	b1.setStatus("grpc.testing.TestService", healthpb.HealthCheckResponse_SERVING)
	b2.setStatus("grpc.testing.TestService", healthpb.HealthCheckResponse_SERVING)
	waitFor(t, 2*time.Second, "both pass", func() bool { return len(healthyAddrs(g)) == 2 })

	// The whole server NOT_SERVING does not matter: the check asks about
	// the service.
	b2.setStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	b2.setStatus("grpc.testing.TestService", healthpb.HealthCheckResponse_NOT_SERVING)
	waitFor(t, 2*time.Second, "NOT_SERVING out", func() bool {
		a := healthyAddrs(g)
		return len(a) == 1 && a[0] == b1.addr
	})
	cc := dial(t, fmt.Sprintf("127.0.0.1:%d", port))
	c := testgrpc.NewTestServiceClient(cc)
	n2 := b2.calls.Load()
	for range 50 {
		if _, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if b2.calls.Load() != n2 {
		t.Errorf("the NOT_SERVING backend got %d calls", b2.calls.Load()-n2)
	}
	b2.setStatus("grpc.testing.TestService", healthpb.HealthCheckResponse_SERVING)
	waitFor(t, 2*time.Second, "SERVING back", func() bool { return len(healthyAddrs(g)) == 2 })
}

// TestHealthCheckGRPCStatus: a backend without the health service answers
// UNIMPLEMENTED; grpc_status=12 makes that healthy.
func TestHealthCheckGRPCStatus(t *testing.T) {
	plain := startBackend(t) // no health service
	for _, tc := range []struct {
		hc      string
		healthy bool
	}{
		{"health_check interval=200ms mandatory type=grpc;", false},
		{"health_check interval=200ms mandatory type=grpc grpc_status=12;", true},
	} {
		port := freePort(t)
		s := startProxy(t, hcConf(port, tc.hc, plain.addr))
		g := group(t, s, "u")
		time.Sleep(500 * time.Millisecond)
		if got := len(healthyAddrs(g)) == 1; got != tc.healthy {
			t.Errorf("%s: healthy %v, want %v", tc.hc, got, tc.healthy)
		}
		s.Close()
	}
}

// TestResolveFollowsDNS: `server NAME resolve` follows the A records of an
// in-process DNS server within valid=, and calls in flight on a peer that
// leaves finish.
func TestResolveFollowsDNS(t *testing.T) {
	d := dnstest.Start(t)
	b4 := startHBackend(t, "tcp", "127.0.0.1")
	_, p, _ := net.SplitHostPort(b4.addr)
	// The same port on ::1, so one name with two addresses reaches both.
	ln6, err := net.Listen("tcp", net.JoinHostPort("::1", p))
	if err != nil {
		t.Skipf("no ::1 on port %s: %v", p, err)
	}
	b6 := &hbackend{t: t, addr: ln6.Addr().String()}
	b6.serve(ln6)
	t.Cleanup(b6.stop)

	d.Set("svc.test", 30, "A 127.0.0.1")
	port := freePort(t)
	conf := fmt.Sprintf(`events {}
http {
  resolver %s valid=1s;
  resolver_timeout 1s;
  upstream u {
    zone u 64k;
    server svc.test:%s resolve;
  }
  server {
    listen 127.0.0.1:%d http2;
    location / { grpc_pass grpc://u; }
  }
}
`, d.Addr, p, port)
	s := startProxy(t, conf)
	g := group(t, s, "u")
	if got := healthyAddrs(g); len(got) != 1 || got[0] != b4.addr {
		t.Fatalf("peers at start = %v, want [%s]", got, b4.addr)
	}
	cc := dial(t, fmt.Sprintf("127.0.0.1:%d", port))
	c := testgrpc.NewTestServiceClient(cc)

	// A long stream on the first peer, in flight across the changes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ping := func() {
		t.Helper()
		if err := stream.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 10}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("stream in flight: %v", err)
		}
	}
	ping()
	l := startLoad(t, fmt.Sprintf("127.0.0.1:%d", port), 2)

	d.Set("svc.test", 30, "A 127.0.0.1", "AAAA ::1")
	dt := waitFor(t, 2*time.Second, "second address in", func() bool { return len(healthyAddrs(g)) == 2 })
	t.Logf("added after %v", dt)
	n6 := b6.calls.Load()
	waitFor(t, 2*time.Second, "new peer gets calls", func() bool { return b6.calls.Load() > n6+10 })
	ping()

	d.Set("svc.test", 30, "AAAA ::1")
	waitFor(t, 2*time.Second, "first address out", func() bool {
		a := healthyAddrs(g)
		return len(a) == 1 && a[0] == b6.addr
	})
	n4 := b4.calls.Load()
	time.Sleep(200 * time.Millisecond)
	if b4.calls.Load() > n4+1 {
		t.Errorf("the removed peer got %d calls", b4.calls.Load()-n4)
	}
	// The stream picked on the removed peer still works.
	ping()
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	l.end()
	if n := l.fails.Load(); n != 0 {
		t.Errorf("%d calls failed while peers came and went: %v", n, l.lastErr.Load())
	}
}

// TestResolveSRV: service= takes servers from SRV records (ports
// included) and follows them.
func TestResolveSRV(t *testing.T) {
	d := dnstest.Start(t)
	b1, b2 := startHBackend(t, "tcp", "127.0.0.1"), startHBackend(t, "tcp", "127.0.0.1")
	_, p1, _ := net.SplitHostPort(b1.addr)
	_, p2, _ := net.SplitHostPort(b2.addr)
	d.Set("_grpc._tcp.svc.test", 30, "SRV 0 5 "+p1+" a.svc.test.")
	d.Set("a.svc.test", 30, "A 127.0.0.1")
	port := freePort(t)
	conf := fmt.Sprintf(`events {}
http {
  upstream u {
    zone u 64k;
    resolver %s valid=1s;
    server svc.test service=grpc resolve;
  }
  server {
    listen 127.0.0.1:%d http2;
    location / { grpc_pass grpc://u; }
  }
}
`, d.Addr, port)
	s := startProxy(t, conf)
	g := group(t, s, "u")
	if got := healthyAddrs(g); len(got) != 1 || got[0] != b1.addr {
		t.Fatalf("peers at start = %v", got)
	}
	d.Set("_grpc._tcp.svc.test", 30, "SRV 0 5 "+p1+" a.svc.test.", "SRV 0 5 "+p2+" a.svc.test.")
	waitFor(t, 2*time.Second, "SRV record added", func() bool { return len(healthyAddrs(g)) == 2 })
	cc := dial(t, fmt.Sprintf("127.0.0.1:%d", port))
	c := testgrpc.NewTestServiceClient(cc)
	for range 20 {
		if _, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if b1.calls.Load() != 10 || b2.calls.Load() != 10 {
		t.Errorf("calls %d/%d, want 10/10", b1.calls.Load(), b2.calls.Load())
	}
}

// sbackend is a TestService whose unary calls take delay and, while fail
// is set, end in UNAVAILABLE.
type sbackend struct {
	addr  string
	calls atomic.Int64
	delay time.Duration
	fail  atomic.Bool
}

func startSBackend(t *testing.T, delay time.Duration) *sbackend {
	t.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	b := &sbackend{addr: ln.Addr().String(), delay: delay}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		b.calls.Add(1)
		time.Sleep(b.delay)
		if b.fail.Load() {
			return nil, status.Error(codes.Unavailable, "draining")
		}
		return h(ctx, req)
	}))
	testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return b
}

func upsConf(port int, directives string, servers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "events {}\nhttp {\n  upstream u {\n    keepalive 32;\n    %s\n", directives)
	for _, s := range servers {
		fmt.Fprintf(&b, "    server %s;\n", s)
	}
	fmt.Fprintf(&b, "  }\n  server {\n    listen 127.0.0.1:%d http2;\n    location / { grpc_pass grpc://u; }\n  }\n}\n", port)
	return b.String()
}

// TestLeastTimeFasterBackend: `least_time header` sends most calls to the
// backend that answers faster.
func TestLeastTimeFasterBackend(t *testing.T) {
	for _, mode := range []string{"header", "last_byte inflight"} {
		t.Run(mode, func(t *testing.T) {
			slow, fast := startSBackend(t, 20*time.Millisecond), startSBackend(t, time.Millisecond)
			port := freePort(t)
			startProxy(t, upsConf(port, "least_time "+mode+";", slow.addr, fast.addr))
			c := testgrpc.NewTestServiceClient(dial(t, fmt.Sprintf("127.0.0.1:%d", port)))
			for range 200 {
				if _, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}); err != nil {
					t.Fatal(err)
				}
			}
			if f, s := fast.calls.Load(), slow.calls.Load(); f < 180 {
				t.Errorf("fast %d, slow %d: want at least 180 of 200 on the fast backend", f, s)
			}
		})
	}
}

// TestOutlierEjectionByStatus: three consecutive UNAVAILABLE from a
// backend eject it for base_ejection_time; it is readmitted afterwards.
func TestOutlierEjectionByStatus(t *testing.T) {
	bad, good := startSBackend(t, 0), startSBackend(t, 0)
	port := freePort(t)
	s := startProxy(t, upsConf(port, "gproxy_outlier_detection consecutive=3 base_ejection_time=1s max_ejection_percent=50;", bad.addr, good.addr))
	g := group(t, s, "u")
	c := testgrpc.NewTestServiceClient(dial(t, fmt.Sprintf("127.0.0.1:%d", port)))
	call := func(n int) (fails int) {
		for range n {
			if _, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}); err != nil {
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("call: %v", err)
				}
				fails++
			}
		}
		return fails
	}
	bad.fail.Store(true)
	if f := call(6); f != 3 {
		t.Fatalf("%d calls failed before the ejection, want 3", f)
	}
	if !g.Peers()[0].Ejected() {
		t.Fatal("not ejected after 3 UNAVAILABLE")
	}
	n := bad.calls.Load()
	if f := call(20); f != 0 || bad.calls.Load() != n {
		t.Fatalf("while ejected: %d failures, %d calls to the ejected backend", f, bad.calls.Load()-n)
	}
	bad.fail.Store(false)
	time.Sleep(1100 * time.Millisecond)
	if f := call(20); f != 0 || bad.calls.Load() != n+10 {
		t.Fatalf("after base_ejection_time: %d failures, %d calls to the readmitted backend", f, bad.calls.Load()-n)
	}
}

// TestHealthCheckReload: after a reload, `mandatory persistent` keeps a
// server that passed its checks healthy at once, plain `mandatory` holds
// it back until its first check, and the old configuration's checks stop.
func TestHealthCheckReload(t *testing.T) {
	b := startHBackend(t, "tcp", "127.0.0.1")
	port := freePort(t)
	conf := func(hc string) *config.Config {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "logs"), 0o755); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := parser.LoadBytes(filepath.Join(dir, "nginx.conf"),
			[]byte(hcConf(port, hc, b.addr)), parser.Options{Prefix: dir})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	const persistent = "health_check interval=1s mandatory persistent type=grpc; access_log off;"
	s := startProxy(t, hcConf(port, persistent, b.addr))
	old := group(t, s, "u")
	waitFor(t, 2*time.Second, "first check passes", func() bool { return len(healthyAddrs(old)) == 1 })

	if err := s.Reload(conf(persistent)); err != nil {
		t.Fatal(err)
	}
	if g := group(t, s, "u"); len(healthyAddrs(g)) != 1 {
		t.Error("persistent: the healthy server is held back after the reload")
	}
	// The new group's first check starts at once; holding its answer
	// makes "before the first check" observable on a loaded machine.
	held := make(chan struct{})
	b.held.Store(&held)
	if err := s.Reload(conf("health_check interval=1s mandatory type=grpc; access_log off;")); err != nil {
		t.Fatal(err)
	}
	g := group(t, s, "u")
	if len(healthyAddrs(g)) != 0 {
		t.Error("mandatory without persistent: healthy before its first check")
	}
	b.held.Store(nil)
	close(held)
	waitFor(t, 2*time.Second, "check after reload", func() bool { return len(healthyAddrs(g)) == 1 })

	// The first group's checker is stopped: a NOT_SERVING server turns
	// the running group unhealthy but leaves the old one as it was.
	b.setStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitFor(t, 2*time.Second, "running group follows", func() bool { return len(healthyAddrs(g)) == 0 })
	if len(healthyAddrs(old)) != 1 {
		t.Error("the replaced configuration still runs health checks")
	}
}

// TestHealthCheckTLS: the checks of a grpcs:// group speak TLS with the
// group's settings (grpc_ssl_verify, trusted certificate, name).
func TestHealthCheckTLS(t *testing.T) {
	ca := tlstest.New(t, nil, tlstest.Options{CN: "gproxy test CA", CA: true})
	cert := tlstest.New(t, ca, tlstest.Options{CN: "localhost"})
	dir := t.TempDir()
	caPath, _ := ca.Write(t, dir, "ca")
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert.TLS()}})))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	port := freePort(t)
	conf := fmt.Sprintf(`events {}
http {
  upstream u { zone u 64k; server %s; }
  server {
    listen 127.0.0.1:%d http2;
    location / {
      grpc_pass grpcs://u;
      grpc_ssl_verify on;
      grpc_ssl_name localhost;
      grpc_ssl_trusted_certificate %s;
      health_check interval=200ms mandatory type=grpc;
    }
  }
}
`, ln.Addr(), port, caPath)
	s := startProxy(t, conf)
	g := group(t, s, "u")
	waitFor(t, 2*time.Second, "TLS check passes", func() bool { return len(healthyAddrs(g)) == 1 })
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitFor(t, 2*time.Second, "NOT_SERVING over TLS", func() bool { return len(healthyAddrs(g)) == 0 })
}
