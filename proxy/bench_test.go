package proxy

import (
	"errors"
	"fmt"
	"github.com/gproxy/gproxy/proxy/nettest"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/proxy/h2"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The unary benchmark drives gproxy with a client and a backend written on
// the codec itself, which allocate little, so that allocations per call are
// mostly the engine's: `go test -run - -bench Unary -benchmem ./proxy/`.

// h2Backend answers every stream as a unary gRPC call: headers, one
// message, trailers with grpc-status 0, once the request has ended.
type h2Backend struct {
	ln net.Listener
	wg sync.WaitGroup
}

var (
	benchRespHeaders  = []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"}}
	benchRespTrailers = []hpack.HeaderField{{Name: "grpc-status", Value: "0"}}
	benchMsg          = append([]byte{0, 0, 0, 0, 100}, make([]byte, 100)...)
)

func startH2Backend(tb testing.TB) *h2Backend {
	tb.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	b := &h2Backend{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				var pre [len(h2.ClientPreface)]byte
				nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(nc, pre[:]); err != nil {
					nc.Close()
					return
				}
				nc.SetReadDeadline(time.Time{})
				h2.NewConn(nc, nil, h2.Server, h2.DefaultLimits(), unaryServer{}).Serve()
			}()
		}
	}()
	tb.Cleanup(func() { ln.Close(); b.wg.Wait() })
	return b
}

type unaryServer struct{}

func (unaryServer) HandleStream(s *h2.Stream, f *http2.MetaHeadersFrame) h2.StreamHandler {
	if f.StreamEnded() {
		unaryReply(s)
		return nil
	}
	return unaryServer{}
}
func (unaryServer) HandleGoAway(*h2.Conn)                             {}
func (unaryServer) HandleClose(*h2.Conn, error)                       {}
func (unaryServer) HandleHeaders(*h2.Stream, *http2.MetaHeadersFrame) {}
func (unaryServer) HandleReset(*h2.Stream, error)                     {}
func (unaryServer) HandleSent(*h2.Stream, int)                        {}
func (unaryServer) HandleData(s *h2.Stream, p []byte, end bool) {
	s.Credit(len(p))
	if end {
		unaryReply(s)
	}
}

func unaryReply(s *h2.Stream) {
	s.WriteHeaders(benchRespHeaders, false)
	s.WriteData(benchMsg, false)
	s.WriteHeaders(benchRespTrailers, true)
}

// unaryClient makes unary calls on one client connection.
type unaryClient struct {
	c    *h2.Conn
	done chan error
}

func dialUnary(tb testing.TB, addr string) *unaryClient {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	u := &unaryClient{done: make(chan error, 1)}
	lim := h2.DefaultLimits()
	lim.MaxRequests = 0
	u.c = h2.NewConn(nc, nil, h2.Client, lim, u)
	go u.c.Serve()
	select {
	case <-u.c.Ready():
	case <-time.After(5 * time.Second):
		tb.Fatal("no SETTINGS from gproxy")
	}
	tb.Cleanup(func() { u.c.Close() })
	return u
}

var benchReqHeaders = []hpack.HeaderField{
	{Name: ":method", Value: "POST"},
	{Name: ":scheme", Value: "http"},
	{Name: ":path", Value: "/grpc.testing.TestService/UnaryCall"},
	{Name: ":authority", Value: "localhost"},
	{Name: "content-type", Value: "application/grpc"},
	{Name: "te", Value: "trailers"},
}

// call makes one unary call and waits for its trailers.
func (u *unaryClient) call() error {
	s, err := u.c.OpenStream(benchReqHeaders, false, u)
	if err != nil {
		return err
	}
	s.WriteData(benchMsg, true)
	select {
	case err := <-u.done:
		return err
	case <-time.After(5 * time.Second):
		return errors.New("call timed out")
	}
}

func (u *unaryClient) HandleStream(s *h2.Stream, _ *http2.MetaHeadersFrame) h2.StreamHandler {
	s.Reset(http2.ErrCodeRefusedStream)
	return nil
}
func (u *unaryClient) HandleGoAway(*h2.Conn)       {}
func (u *unaryClient) HandleClose(*h2.Conn, error) {}
func (u *unaryClient) HandleSent(*h2.Stream, int)  {}
func (u *unaryClient) HandleData(s *h2.Stream, p []byte, end bool) {
	s.Credit(len(p))
	if end {
		u.done <- errors.New("response ended without trailers")
	}
}
func (u *unaryClient) HandleHeaders(_ *h2.Stream, f *http2.MetaHeadersFrame) {
	if f.StreamEnded() {
		if v := headerValue(f.Fields, "grpc-status"); v != "0" {
			u.done <- fmt.Errorf("grpc-status %q", v)
			return
		}
		u.done <- nil
	}
}
func (u *unaryClient) HandleReset(_ *h2.Stream, err error) { u.done <- err }

// startBenchProxy runs gproxy in front of addr with the given http-level
// directives, its prefix (default access log) in a temporary directory.
func startBenchProxy(tb testing.TB, httpDirectives, backend string) *Server {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "logs"), 0o755); err != nil {
		tb.Fatal(err)
	}
	conf := fmt.Sprintf(`events {}
http {
    keepalive_requests 100000000;
    %s
    upstream be { server %s; }
    server {
        listen 127.0.0.1:%d http2;
        location / { grpc_pass grpc://be; }
    }
}
`, httpDirectives, backend, benchPort(tb))
	cfg, _, err := parser.LoadBytes(filepath.Join(dir, "nginx.conf"), []byte(conf), parser.Options{Prefix: dir})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := New(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// processCPU is the user and system CPU time the process has used, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func benchPort(tb testing.TB) int {
	tb.Helper()
	l, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// benchLogConfigs are the access_log settings the unary benchmark runs
// with.
var benchLogConfigs = []struct{ name, directives string }{
	{"log=off", "access_log off;"},
	{"log=main", `log_format main '$remote_addr [$time_local] "$request" $status $body_bytes_sent ` +
		`$request_time $upstream_addr $upstream_status $grpc_status';
    access_log logs/access.log main;`},
	// log=off plus a limit_req that never refuses or delays and a
	// limit_conn, both keyed by client address: the cost of the access
	// phase on the hot path.
	{"limits", `access_log off;
    limit_req_zone $binary_remote_addr zone=rate:1m rate=100000000r/s;
    limit_conn_zone $binary_remote_addr zone=conn:1m;
    limit_req zone=rate burst=1000 nodelay;
    limit_conn conn 1000;`},
}

// BenchmarkUnary: sequential unary calls over one client connection.
func BenchmarkUnary(b *testing.B) {
	be := startH2Backend(b)
	for _, lc := range benchLogConfigs {
		b.Run(lc.name, func(b *testing.B) {
			s := startBenchProxy(b, lc.directives, be.ln.Addr().String())
			u := dialUnary(b, s.Addrs()[0].String())
			if err := u.call(); err != nil { // warm the upstream connection
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			for range b.N {
				if err := u.call(); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time of the whole process (client, proxy and backend)
			// per call: steadier than wall time on a shared machine.
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
