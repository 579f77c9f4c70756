package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"github.com/gproxy/gproxy/proxy/nettest"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser"
	"go.uber.org/zap/zaptest"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// backend is a real grpc-go interop TestService server on 127.0.0.1.
type backend struct {
	addr  string
	calls atomic.Int64
	srv   *grpc.Server
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	lis, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: lis.Addr().String()}
	b.srv = grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			b.calls.Add(1)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			b.calls.Add(1)
			return h(srv, ss)
		}),
		grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20),
	)
	testgrpc.RegisterTestServiceServer(b.srv, interop.NewTestServer())
	go b.srv.Serve(lis)
	t.Cleanup(b.srv.Stop)
	return b
}

// startProxy loads conf through the real parser and starts a Server.
func startProxy(t *testing.T, conf string) *Server {
	t.Helper()
	// The prefix holds the default access log (logs/access.log).
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := parser.LoadBytes(filepath.Join(dir, "nginx.conf"), []byte(conf), parser.Options{Prefix: dir})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	s, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func articleConf(port int, servers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "events { worker_connections 1024; }\nhttp {\n  upstream grpc_servers {\n")
	for _, s := range servers {
		fmt.Fprintf(&b, "    server %s;\n", s)
	}
	fmt.Fprintf(&b, "  }\n  server {\n    listen 127.0.0.1:%d http2;\n", port)
	b.WriteString("    location / { grpc_pass grpc://grpc_servers; }\n")
	b.WriteString("    location = /healthz { return 200 \"ok\"; }\n  }\n}\n")
	return b.String()
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func payload(n int) *testpb.Payload {
	return &testpb.Payload{Body: bytes.Repeat([]byte{'x'}, n)}
}

// TestAllRPCKindsAndBalance: the article's config, two real backends, ONE
// client connection: all four kinds of RPC work and 1,000 unary calls
// split 500/500.
func TestAllRPCKindsAndBalance(t *testing.T) {
	b1, b2 := startBackend(t), startBackend(t)
	port := freePort(t)
	s := startProxy(t, articleConf(port, b1.addr, b2.addr))
	cc := dial(t, s.Addrs()[0].String())
	tc := testgrpc.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("unary", func(t *testing.T) {
		resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 1000, Payload: payload(2000)})
		if err != nil || len(resp.GetPayload().GetBody()) != 1000 {
			t.Fatalf("UnaryCall: %v, %d bytes", err, len(resp.GetPayload().GetBody()))
		}
	})
	t.Run("large unary", func(t *testing.T) {
		resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 3 << 20, Payload: payload(5 << 20)})
		if err != nil || len(resp.GetPayload().GetBody()) != 3<<20 {
			t.Fatalf("UnaryCall: %v", err)
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		req := &testpb.StreamingOutputCallRequest{}
		sizes := []int32{31415, 9, 2653, 58979, 1 << 20}
		for _, n := range sizes {
			req.ResponseParameters = append(req.ResponseParameters, &testpb.ResponseParameters{Size: n})
		}
		st, err := tc.StreamingOutputCall(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			m, err := st.Recv()
			if err == io.EOF {
				if i != len(sizes) {
					t.Fatalf("got %d messages, want %d", i, len(sizes))
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(m.GetPayload().GetBody()) != int(sizes[i]) {
				t.Fatalf("message %d: %d bytes", i, len(m.GetPayload().GetBody()))
			}
		}
	})
	t.Run("client streaming", func(t *testing.T) {
		st, err := tc.StreamingInputCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, n := range []int{27182, 8, 1828, 45904, 2 << 20} {
			if err := st.Send(&testpb.StreamingInputCallRequest{Payload: payload(n)}); err != nil {
				t.Fatal(err)
			}
			total += n
		}
		resp, err := st.CloseAndRecv()
		if err != nil || int(resp.GetAggregatedPayloadSize()) != total {
			t.Fatalf("CloseAndRecv: %v, %d want %d", err, resp.GetAggregatedPayloadSize(), total)
		}
	})
	t.Run("bidi ping-pong", func(t *testing.T) {
		st, err := tc.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range []int32{31415, 9, 2653, 58979} {
			req := &testpb.StreamingOutputCallRequest{
				ResponseParameters: []*testpb.ResponseParameters{{Size: n}},
				Payload:            payload(int(n) + 1),
			}
			if err := st.Send(req); err != nil {
				t.Fatal(err)
			}
			m, err := st.Recv()
			if err != nil || len(m.GetPayload().GetBody()) != int(n) {
				t.Fatalf("ping %d: %v", i, err)
			}
		}
		st.CloseSend()
		if _, err := st.Recv(); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
	})
	t.Run("status and metadata", func(t *testing.T) {
		md := metadata.Pairs("x-grpc-test-echo-initial", "hello", "x-grpc-test-echo-trailing-bin", "\x0a\x0b\x0a")
		var hdr, trl metadata.MD
		_, err := tc.UnaryCall(metadata.NewOutgoingContext(ctx, md), &testpb.SimpleRequest{
			ResponseStatus: &testpb.EchoStatus{Code: 2, Message: "test status message \t\n✓"},
		}, grpc.Header(&hdr), grpc.Trailer(&trl))
		if st := status.Convert(err); st.Code() != codes.Unknown || st.Message() != "test status message \t\n✓" {
			t.Fatalf("status: %v", err)
		}
		if got := trl.Get("x-grpc-test-echo-trailing-bin"); len(got) != 1 || got[0] != "\x0a\x0b\x0a" {
			t.Fatalf("trailer: %v", trl)
		}
		if got := hdr.Get("x-grpc-test-echo-initial"); len(got) != 1 || got[0] != "hello" {
			t.Fatalf("header: %v", hdr)
		}
	})
	t.Run("unimplemented", func(t *testing.T) {
		_, err := testgrpc.NewUnimplementedServiceClient(cc).UnimplementedCall(ctx, &testpb.Empty{})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("balance 500/500", func(t *testing.T) {
		n1, n2 := b1.calls.Load(), b2.calls.Load()
		for i := 0; i < 1000; i++ {
			if _, err := tc.EmptyCall(ctx, &testpb.Empty{}); err != nil {
				t.Fatal(err)
			}
		}
		d1, d2 := b1.calls.Load()-n1, b2.calls.Load()-n2
		if d1 != 500 || d2 != 500 {
			t.Fatalf("split %d/%d, want 500/500", d1, d2)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 100, Payload: payload(100)})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestErrors: gRPC-native errors for a dead backend, grpc-timeout, and a
// clear HTTP/1.1 answer.
func TestErrors(t *testing.T) {
	dead := freePort(t)
	port := freePort(t)
	s := startProxy(t, articleConf(port, fmt.Sprintf("127.0.0.1:%d", dead)))
	addr := s.Addrs()[0].String()
	tc := testgrpc.NewTestServiceClient(dial(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := tc.EmptyCall(ctx, &testpb.Empty{})
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "connection refused") ||
		!strings.Contains(st.Message(), `"grpc_servers"`) {
		t.Fatalf("dead backend: %v", err)
	}

	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || !strings.Contains(string(body), "502 Bad Gateway") {
		t.Fatalf("HTTP/1.1 to grpc_pass, dead backend: %d %q, want nginx's 502 page", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("return over HTTP/1.1: %d %q", resp.StatusCode, body)
	}
}

func TestDeadline(t *testing.T) {
	b := startBackend(t)
	port := freePort(t)
	s := startProxy(t, articleConf(port, b.addr))
	tc := testgrpc.NewTestServiceClient(dial(t, s.Addrs()[0].String()))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// The server-streaming call sleeps 2s before answering.
	st, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 1, IntervalUs: 2_000_000}},
	})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v", err)
	}
}

// TestReturnOverHTTP2 checks a `return` location with a raw HTTP/2 GET.
func TestReturnOverHTTP2(t *testing.T) {
	b := startBackend(t)
	port := freePort(t)
	s := startProxy(t, articleConf(port, b.addr))
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}}
	resp, err := c.Get("http://" + s.Addrs()[0].String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" || resp.ProtoMajor != 2 {
		t.Fatalf("%s %d %q", resp.Proto, resp.StatusCode, body)
	}
}
