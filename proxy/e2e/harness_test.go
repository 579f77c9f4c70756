package e2e

import (
	"context"
	"flag"
	"fmt"
	"github.com/gproxy/gproxy/proxy/nettest"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/grpclog"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/gproxy/gproxy/examples/testservice"
)

var (
	proxyFlag   = flag.String("e2e.proxy", "gproxy", "proxy under test: gproxy (in-process) or nginx; the attack tests also take gproxy-process and haproxy")
	nginxFlag   = flag.String("e2e.nginx", "nginx", "nginx binary for -e2e.proxy=nginx")
	grpcLogFlag = flag.Bool("e2e.grpclog", false, "show grpc-go's own warnings and errors")
)

// workerConnections is the proxies' worker_connections (HAProxy's
// maxconn); the idle-flood attack test lowers it.
var workerConnections = 20000

// maxMsg is the message size limit given to every client and backend, above
// the 64 MiB the large-message test sends.
const maxMsg = 256 << 20

func TestMain(m *testing.M) {
	flag.Parse()
	// grpc-go's interop client cases report failure through grpclog.Fatal,
	// which would exit the whole test binary. This logger turns it into a
	// panic that runInterop recovers into a test failure. It must be set
	// before any other gRPC call.
	grpclog.SetLoggerV2(&testLogger{verbose: *grpcLogFlag})
	os.Exit(m.Run())
}

// proxyInstance is one running proxy under test.
type proxyInstance struct {
	kind string
	// mem returns the proxy's memory in bytes and what was measured: the
	// Go heap in use for in-process gproxy, VmRSS for a separate process.
	mem func() (uint64, string)
	// anon, for a separate process, returns its anonymous resident
	// memory (RssAnon) in bytes: what clients can make it grow, without
	// the binary's and libraries' file pages that VmRSS also counts.
	// Nil in process.
	anon func() uint64
}

// startProxy starts the proxy chosen by -e2e.proxy with an nginx.conf whose
// http block holds httpBody. The main context is the harness's: one worker,
// daemon off, logs where the harness wants them. Every listen in httpBody must
// use an address from freeAddr. The proxy stops when the test ends.
func startProxy(t *testing.T, httpBody string) *proxyInstance {
	t.Helper()
	switch *proxyFlag {
	case "gproxy":
		return startGproxy(t, httpBody)
	case "nginx":
		return startNginx(t, httpBody)
	}
	t.Fatalf("-e2e.proxy=%q: want gproxy or nginx", *proxyFlag)
	return nil
}

// differs reports whether the proxy under test is one known to behave
// differently here, logging the difference; the caller then skips its
// assertion rather than bending it.
func differs(t *testing.T, proxy, why string) bool {
	t.Helper()
	if *proxyFlag != proxy {
		return false
	}
	t.Logf("known %s difference: %s", proxy, why)
	return true
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago. nginx must be told its port in the config, so the harness picks one.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitListening dials addr until it accepts or the deadline passes.
func waitListening(ctx context.Context, addr string) error {
	network := "tcp"
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", path
	}
	for {
		c, err := net.DialTimeout(network, addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nothing listening on %s: %v", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// backend is one in-process gRPC TestService on 127.0.0.1.
type backend struct {
	name string
	addr string
	svc  *testservice.Service
	srv  *grpc.Server
	ln   *trackingListener
}

// startBackend starts a TestService named name; it stops when the test ends.
func startBackend(t *testing.T, name string, opts ...grpc.ServerOption) *backend {
	t.Helper()
	inner, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln := &trackingListener{Listener: inner}
	opts = append([]grpc.ServerOption{grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg)}, opts...)
	b := &backend{name: name, addr: inner.Addr().String(), svc: testservice.New(name), srv: grpc.NewServer(opts...), ln: ln}
	b.svc.Register(b.srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		b.srv.Stop()
		<-done
	})
	return b
}

// startBackends starts n backends named b1..bn.
func startBackends(t *testing.T, n int, opts ...grpc.ServerOption) []*backend {
	bs := make([]*backend, n)
	for i := range bs {
		bs[i] = startBackend(t, fmt.Sprintf("b%d", i+1), opts...)
	}
	return bs
}

// kill stops the backend the way a crashed process does: its listener and
// every accepted connection close at once, with no GOAWAY or RST_STREAM.
func (b *backend) kill() {
	b.ln.closeAll()
	b.srv.Stop()
}

// trackingListener remembers accepted connections so kill can drop them.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
	sent  atomic.Int64 // bytes the backend wrote, once count is set
	count atomic.Bool
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil && l.count.Load() {
		c = &countingConn{Conn: c, n: &l.sent}
	}
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// countingConn counts the bytes written to it.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (l *trackingListener) closeAll() {
	l.Listener.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}

// upstreamBlock renders an upstream block: one server line per backend, each
// with the given parameters (e.g. "weight=5"), if any.
func upstreamBlock(name string, bs []*backend, params ...string) string {
	var sb strings.Builder
	// keepalive: the tests are about what the proxy does with its
	// upstream connections, which without it nginx and gproxy close as
	// soon as they are idle.
	fmt.Fprintf(&sb, "upstream %s {\n    keepalive 32;\n", name)
	for i, b := range bs {
		p := ""
		if i < len(params) && params[i] != "" {
			p = " " + params[i]
		}
		fmt.Fprintf(&sb, "    server %s%s;\n", b.addr, p)
	}
	sb.WriteString("}\n")
	return sb.String()
}

// grpcSite is the usual test setup: backends in one upstream behind a server
// that grpc_passes everything. It returns the proxy's listen address.
func grpcSite(t *testing.T, bs []*backend, params ...string) (string, *proxyInstance) {
	t.Helper()
	addr := freeAddr(t)
	p := startProxy(t, upstreamBlock("backends", bs, params...)+fmt.Sprintf(`
server {
    listen %s http2;
    client_max_body_size 0;
    location / {
        grpc_pass grpc://backends;
    }
}
`, addr))
	return addr, p
}

// dial opens one client connection (one HTTP/2 connection: pick_first, no
// name resolution) to addr, closed when the test ends.
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// client is dial plus the TestService stub.
func client(t *testing.T, addr string) testgrpc.TestServiceClient {
	return testgrpc.NewTestServiceClient(dial(t, addr))
}

// testCtx bounds a test's calls.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// interopFailure is what testLogger panics with on grpclog.Fatal.
type interopFailure string

// runInterop runs one interop client case and turns its grpclog.Fatal into
// a test failure.
func runInterop(t *testing.T, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			if msg, ok := r.(interopFailure); ok {
				t.Fatal(string(msg))
			}
			panic(r)
		}
	}()
	f()
}

// testLogger is a grpclog.LoggerV2 (and DepthLoggerV2) that drops info,
// keeps warnings and errors on stderr only when asked, and panics on fatal.
type testLogger struct{ verbose bool }

func (l *testLogger) out(sev string, args ...any) {
	if l.verbose {
		fmt.Fprintf(os.Stderr, "grpc %s: %s\n", sev, fmt.Sprint(args...))
	}
}
func (l *testLogger) Info(args ...any)                 {}
func (l *testLogger) Infoln(args ...any)               {}
func (l *testLogger) Infof(format string, args ...any) {}
func (l *testLogger) Warning(args ...any)              { l.out("warning", args...) }
func (l *testLogger) Warningln(args ...any)            { l.out("warning", args...) }
func (l *testLogger) Warningf(format string, args ...any) {
	l.out("warning", fmt.Sprintf(format, args...))
}
func (l *testLogger) Error(args ...any)                 { l.out("error", args...) }
func (l *testLogger) Errorln(args ...any)               { l.out("error", args...) }
func (l *testLogger) Errorf(format string, args ...any) { l.out("error", fmt.Sprintf(format, args...)) }
func (l *testLogger) Fatal(args ...any)                 { panic(interopFailure(fmt.Sprint(args...))) }
func (l *testLogger) Fatalln(args ...any)               { panic(interopFailure(fmt.Sprint(args...))) }
func (l *testLogger) Fatalf(format string, args ...any) {
	panic(interopFailure(fmt.Sprintf(format, args...)))
}
func (l *testLogger) V(int) bool                      { return false }
func (l *testLogger) InfoDepth(int, ...any)           {}
func (l *testLogger) WarningDepth(_ int, args ...any) { l.out("warning", args...) }
func (l *testLogger) ErrorDepth(_ int, args ...any)   { l.out("error", args...) }
func (l *testLogger) FatalDepth(_ int, args ...any)   { panic(interopFailure(fmt.Sprint(args...))) }
