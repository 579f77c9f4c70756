package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"github.com/gproxy/gproxy/proxy/nettest"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Keys the interop server echoes back: one as a response header, one as a
// binary trailer.
const (
	echoInitial     = "x-grpc-test-echo-initial"
	echoTrailingBin = "x-grpc-test-echo-trailing-bin"
)

// binValue is a -bin metadata value that is not text, to show it crosses
// the proxy byte for byte.
var binValue = string([]byte{0, 1, 0xfe, 0xff, '\n', 'g', 'p'})

// site is the proxy setup of this file's tests: the TestService backends at
// /, a backend that never answers under /deaf.Service/, and a plain return.
type site struct {
	addr  string
	bs    []*backend
	deaf  *deafBackend
	proxy *proxyInstance
}

func startSite(t *testing.T, opts ...grpc.ServerOption) *site {
	t.Helper()
	s := &site{addr: freeAddr(t), bs: startBackends(t, 2, opts...), deaf: startDeafBackend(t)}
	s.proxy = startProxy(t, upstreamBlock("backends", s.bs)+fmt.Sprintf(`
upstream deaf {
    server %s;
}
server {
    listen %s http2;
    location = /healthz {
        return 200 "ok";
    }
    location /deaf.Service/ {
        grpc_pass grpc://deaf;
    }
    location / {
        grpc_pass grpc://backends;
    }
}
`, s.deaf.addr, s.addr))
	return s
}

// TestMetadataAndStatus checks that response headers, trailers with -bin
// values and status codes with messages cross the proxy, on a normal
// response and on a trailers-only one.
func TestMetadataAndStatus(t *testing.T) {
	s := startSite(t)
	tc := client(t, s.addr)
	ctx := testCtx(t, 10*time.Second)

	t.Run("ok with header and bin trailer", func(t *testing.T) {
		var hdr, trl metadata.MD
		md := metadata.Pairs(echoInitial, "hello", echoTrailingBin, binValue)
		_, err := tc.UnaryCall(metadata.NewOutgoingContext(ctx, md), &testpb.SimpleRequest{ResponseSize: 10}, grpc.Header(&hdr), grpc.Trailer(&trl))
		if err != nil {
			t.Fatal(err)
		}
		if got := hdr.Get(echoInitial); len(got) != 1 || got[0] != "hello" {
			t.Errorf("header %s = %q, want [hello]", echoInitial, got)
		}
		if got := trl.Get(echoTrailingBin); len(got) != 1 || got[0] != binValue {
			t.Errorf("trailer %s = %q, want [%q]", echoTrailingBin, got, binValue)
		}
	})

	t.Run("error status is trailers-only with bin trailer", func(t *testing.T) {
		var trl metadata.MD
		md := metadata.Pairs(echoTrailingBin, binValue)
		_, err := tc.UnaryCall(metadata.NewOutgoingContext(ctx, md), &testpb.SimpleRequest{
			ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such thing: ☺ 100%"},
		}, grpc.Trailer(&trl))
		st := status.Convert(err)
		if st.Code() != codes.NotFound || st.Message() != "no such thing: ☺ 100%" {
			t.Errorf("status = %v, want NotFound %q", err, "no such thing: ☺ 100%")
		}
		if got := trl.Get(echoTrailingBin); len(got) != 1 || got[0] != binValue {
			t.Errorf("trailer %s = %q, want [%q]", echoTrailingBin, got, binValue)
		}
	})

	t.Run("trailers-only on the wire", func(t *testing.T) {
		// grpc-go's backend answers an error before any message with one
		// HEADERS frame that ends the stream. The client must get it in
		// the same shape: grpc-status in the headers, and no body.
		req := &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.PermissionDenied), Message: "denied"}}
		md := map[string]string{echoTrailingBin: base64.RawStdEncoding.EncodeToString([]byte(binValue))}
		// Control: straight to a backend, the response is trailers-only.
		resp, _, err := rawGRPC(t, s.bs[0].addr, "/grpc.testing.TestService/UnaryCall", req, md)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("grpc-status") == "" {
			t.Fatalf("control: the backend itself did not answer trailers-only: header %v, trailer %v", resp.Header, resp.Trailer)
		}
		resp, body, err := rawGRPC(t, s.addr, "/grpc.testing.TestService/UnaryCall", req, md)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("status %d, header %v, trailer %v, %d body bytes", resp.StatusCode, resp.Header, resp.Trailer, len(body))
		if resp.StatusCode != 200 {
			t.Errorf(":status = %d, want 200", resp.StatusCode)
		}
		grpcStatus := resp.Header.Get("grpc-status")
		if grpcStatus == "" {
			grpcStatus = resp.Trailer.Get("grpc-status")
			t.Errorf("grpc-status not in the response headers: the trailers-only response was reshaped")
		}
		if grpcStatus != fmt.Sprint(int(codes.PermissionDenied)) {
			t.Errorf("grpc-status = %q, want %d", grpcStatus, codes.PermissionDenied)
		}
		if len(body) != 0 {
			t.Errorf("trailers-only response has a %d-byte body", len(body))
		}
	})
}

// TestDeadlines checks grpc-timeout: it reaches the backend, and the proxy
// itself ends a call whose deadline passed even when the backend is silent.
func TestDeadlines(t *testing.T) {
	seen := make(chan time.Duration, 1)
	recordDeadline := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if d, ok := ctx.Deadline(); ok {
			select {
			case seen <- time.Until(d):
			default:
			}
		}
		return h(ctx, req)
	}
	s := startSite(t, grpc.UnaryInterceptor(recordDeadline))
	tc := client(t, s.addr)

	t.Run("grpc-timeout reaches the backend", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := tc.EmptyCall(ctx, &testpb.Empty{}); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-seen:
			if d <= 0 || d > 5*time.Second {
				t.Errorf("backend saw a deadline %v away, want within 5s", d)
			}
		default:
			t.Errorf("backend saw no deadline: grpc-timeout was not passed on")
		}
	})

	t.Run("sleeping backend gives DEADLINE_EXCEEDED", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		st, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
			ResponseParameters: []*testpb.ResponseParameters{{Size: 1, IntervalUs: 3_000_000}},
		})
		if err == nil {
			_, err = st.Recv()
		}
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("got %v, want DeadlineExceeded", err)
		}
	})

	t.Run("proxy enforces grpc-timeout on a silent backend", func(t *testing.T) {
		// A raw client that does not enforce its own deadline: only the
		// proxy can end this call on time.
		start := time.Now()
		resp, body, err := rawGRPC(t, s.addr, "/deaf.Service/Call", &testpb.Empty{}, map[string]string{"grpc-timeout": "300m"})
		took := time.Since(start)
		if err != nil {
			if differs(t, "nginx", "ignores grpc-timeout and waits for grpc_read_timeout (60s)") {
				return
			}
			t.Fatalf("after %v: %v", took.Round(time.Millisecond), err)
		}
		code := resp.Header.Get("grpc-status")
		if code == "" {
			code = resp.Trailer.Get("grpc-status")
		}
		t.Logf("after %v: status %d, grpc-status %q, grpc-message %q, %d body bytes", took.Round(time.Millisecond), resp.StatusCode, code, resp.Header.Get("grpc-message")+resp.Trailer.Get("grpc-message"), len(body))
		if code != fmt.Sprint(int(codes.DeadlineExceeded)) {
			t.Errorf("grpc-status = %q, want %d (DEADLINE_EXCEEDED)", code, codes.DeadlineExceeded)
		}
		if took > 2*time.Second {
			t.Errorf("took %v for a 300ms grpc-timeout", took)
		}
	})
}

// TestHTTP1 checks what an HTTP/1.1 client gets: a plain location answers,
// and a gRPC location refuses clearly instead of hanging or dropping the
// connection.
func TestHTTP1(t *testing.T) {
	s := startSite(t)

	t.Run("return over HTTP/1.1", func(t *testing.T) {
		status, body, err := http1(s.addr, "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
		if err != nil && differs(t, "nginx", "nginx 1.22 speaks only HTTP/2 on a `listen ... http2` port without TLS (1.25.1+ also accepts HTTP/1.1)") {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if status != 200 || body != "ok" {
			t.Errorf("got %d %q, want 200 \"ok\"", status, body)
		}
	})

	t.Run("return over h2", func(t *testing.T) {
		resp, err := h2Client().Get("http://" + s.addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "ok" || resp.ProtoMajor != 2 {
			t.Errorf("got %s %d %q, want HTTP/2.0 200 \"ok\"", resp.Proto, resp.StatusCode, body)
		}
	})

	t.Run("gRPC over HTTP/1.1 is refused clearly", func(t *testing.T) {
		req := "POST /grpc.testing.TestService/EmptyCall HTTP/1.1\r\nHost: test\r\nContent-Type: application/grpc\r\nTE: trailers\r\nContent-Length: 5\r\n\r\n\x00\x00\x00\x00\x00"
		status, body, err := http1(s.addr, req)
		t.Logf("HTTP/1.1 gRPC call: status %d, body %q, err %v", status, body, err)
		if err != nil && differs(t, "nginx", "nginx 1.22 speaks only HTTP/2 on a `listen ... http2` port without TLS") {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if status < 400 || strings.TrimSpace(body) == "" {
			t.Errorf("got %d %q, want a 4xx/5xx with a message saying gRPC needs HTTP/2", status, body)
		}
	})
}

// http1 sends a raw HTTP/1.1 request and reads one response, bounded.
func http1(addr, req string) (int, string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", fmt.Errorf("reading an HTTP/1.1 response: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// h2Client speaks HTTP/2 with prior knowledge over plain TCP (h2c).
func h2Client() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
		},
	}
}

// rawGRPC makes one gRPC unary call with a plain HTTP/2 client, which
// shows the response as it is on the wire and enforces no deadline itself.
func rawGRPC(t *testing.T, addr, path string, msg proto.Message, hdr map[string]string) (*http.Response, []byte, error) {
	t.Helper()
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(b)))
	frame = append(frame, b...)
	req, err := http.NewRequest("POST", "http://"+addr+path, bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := h2Client()
	c.Timeout = 3 * time.Second
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// deafBackend accepts HTTP/2 (h2c) calls and never answers them.
type deafBackend struct{ addr string }

func startDeafBackend(t *testing.T) *deafBackend {
	t.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}), &http2.Server{})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return &deafBackend{addr: ln.Addr().String()}
}
