package proxy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/proxy/nettest"
	"github.com/gproxy/gproxy/proxy/nginxtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// startProxyLogged is startProxy with the error log captured.
func startProxyLogged(t *testing.T, conf string) *observer.ObservedLogs {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := parser.LoadBytes(filepath.Join(dir, "nginx.conf"), []byte(conf), parser.Options{Prefix: dir})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	s, err := New(cfg, zap.New(core))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return logs
}

// funcBackend is a grpc-go TestService whose unary calls first run hook
// (nil: none); a non-nil error from hook is the call's answer.
type funcBackend struct {
	addr  string
	mu    sync.Mutex
	calls int
}

func startFuncBackend(t *testing.T, hook func(ctx context.Context) error) *funcBackend {
	t.Helper()
	lis, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	b := &funcBackend{addr: lis.Addr().String()}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		b.mu.Lock()
		b.calls++
		b.mu.Unlock()
		if hook != nil {
			if err := hook(ctx); err != nil {
				return nil, err
			}
		}
		return h(ctx, req)
	}))
	testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return b
}

func (b *funcBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// startCloser is an HTTP/2 server on 127.0.0.1 that completes the
// handshake, then closes the connection (cleanly: FIN, then it drains
// what the proxy still sends) when a request's HEADERS arrive.
func startCloser(t *testing.T) string {
	return serveRaw(t, func(_ *rawWriter, f http2.Frame) bool {
		_, headers := f.(*http2.HeadersFrame)
		return !headers
	})
}

// siteConf is a server example.com on port passing to upstream backends
// of servers (each "ADDR [params]"), with extra location directives.
func siteConf(port int, upstreamExtra string, locExtra string, servers ...string) string {
	var b strings.Builder
	b.WriteString("events {}\nhttp {\n  access_log off;\n  upstream backends {\n")
	b.WriteString(upstreamExtra)
	for _, s := range servers {
		fmt.Fprintf(&b, "    server %s;\n", s)
	}
	fmt.Fprintf(&b, "  }\n  server {\n    listen 127.0.0.1:%d http2;\n    server_name example.com www.example.com;\n", port)
	fmt.Fprintf(&b, "    location / { grpc_pass grpc://backends; %s }\n  }\n}\n", locExtra)
	return b.String()
}

// errorLines returns the captured lines, checking nginx's shape: level
// error and exactly one field, "connection".
func errorLines(t *testing.T, logs *observer.ObservedLogs) []string {
	t.Helper()
	var out []string
	for _, e := range logs.All() {
		if e.Level != zapcore.ErrorLevel || len(e.Context) != 1 || e.Context[0].Key != "connection" {
			t.Errorf("log entry %q at %v with fields %v: want level error, one field \"connection\"", e.Message, e.Level, e.Context)
		}
		out = append(out, e.Message)
	}
	return out
}

// TestErrorLogUpstream: each kind of upstream failure writes nginx's line,
// word for word.
func TestErrorLogUpstream(t *testing.T) {
	const method = "/grpc.testing.TestService/EmptyCall"
	tail := func(port int, upstream string) string {
		return fmt.Sprintf(`, client: 127.0.0.1, server: example.com, request: "POST %s HTTP/2.0", upstream: "grpc://%s", host: "127.0.0.1:%d"`,
			method, upstream, port)
	}
	call := func(t *testing.T, port int) error {
		cc := dial(t, fmt.Sprintf("127.0.0.1:%d", port))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testpb.Empty{})
		return err
	}

	t.Run("connect refused, then no live upstreams", func(t *testing.T) {
		dead1, dead2 := nettest.Addr(t), nettest.Addr(t)
		port := freePort(t)
		logs := startProxyLogged(t, siteConf(port, "", "", dead1, dead2))
		if err := call(t, port); status.Code(err) != codes.Unavailable {
			t.Fatalf("call: %v", err)
		}
		if err := call(t, port); status.Code(err) != codes.Unavailable {
			t.Fatalf("second call: %v", err)
		}
		want := []string{
			"connect() failed (111: Connection refused) while connecting to upstream" + tail(port, dead1),
			"connect() failed (111: Connection refused) while connecting to upstream" + tail(port, dead2),
			"no live upstreams while connecting to upstream" + tail(port, "backends"),
		}
		if got := errorLines(t, logs); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("error log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("read timeout", func(t *testing.T) {
		slow := startFuncBackend(t, func(ctx context.Context) error {
			select {
			case <-time.After(2 * time.Second):
			case <-ctx.Done():
			}
			return nil
		})
		port := freePort(t)
		logs := startProxyLogged(t, siteConf(port, "", "grpc_read_timeout 200ms;", slow.addr))
		if err := call(t, port); status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("call: %v", err)
		}
		want := "upstream timed out (110: Connection timed out) while reading response header from upstream" + tail(port, slow.addr)
		if got := errorLines(t, logs); len(got) != 1 || got[0] != want {
			t.Fatalf("error log %q, want %q", got, want)
		}
	})

	t.Run("premature close", func(t *testing.T) {
		closer := startCloser(t)
		port := freePort(t)
		logs := startProxyLogged(t, siteConf(port, "", "", closer))
		if err := call(t, port); status.Code(err) != codes.Unavailable {
			t.Fatalf("call: %v", err)
		}
		want := "upstream prematurely closed connection while reading response header from upstream" + tail(port, closer)
		if got := errorLines(t, logs); len(got) != 1 || got[0] != want {
			t.Fatalf("error log %q, want %q", got, want)
		}
	})
}

// TestErrorLogMatchesNginx runs the same failures through real nginx and
// through gproxy and compares the error log lines after nginx's
// "DATE TIME [error] PID#TID: *N " prefix (the ops encoder's job), with
// each proxy's own address written as PROXY.
func TestErrorLogMatchesNginx(t *testing.T) {
	slow := startFuncBackend(t, func(ctx context.Context) error {
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
		}
		return nil
	})
	closer := startCloser(t)
	for _, sc := range []struct {
		name     string
		servers  []string
		location string
		calls    int
	}{
		{"connect refused, then no live upstreams", []string{nettest.Addr(t), nettest.Addr(t)}, "", 2},
		{"read timeout", []string{slow.addr}, "grpc_read_timeout 200ms;", 1},
		{"premature close", []string{closer}, "", 1},
		{"reset before the response", []string{startRawServer(t, func(w *rawWriter, id uint32) bool {
			return w.fr.WriteRSTStream(id, http2.ErrCodeInternal) == nil
		})}, "", 1},
		// nginx names the action "sending to client" when the end arrives
		// with the response header, "reading upstream" when it comes
		// later; gproxy always says the latter.
		{"closed after the response header", []string{startRawServer(t, func(w *rawWriter, id uint32) bool {
			w.headers(id, false, ":status", "200", "content-type", "application/grpc")
			w.fr.WriteData(id, false, []byte{0, 0, 0, 0, 0})
			time.Sleep(200 * time.Millisecond)
			return false
		})}, "", 1},
	} {
		t.Run(sc.name, func(t *testing.T) {
			ups := "upstream backends {\n"
			for _, s := range sc.servers {
				ups += "    server " + s + ";\n"
			}
			ups += "}\n"
			body := ups + "server {\n  listen {ADDR} http2;\n  server_name example.com www.example.com;\n" +
				"  location / { grpc_pass grpc://backends; " + sc.location + " }\n}\n"
			run := func(addr string) {
				cc := dial(t, addr)
				for range sc.calls {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testpb.Empty{})
					cancel()
				}
			}
			dir, naddr := nginxtest.Start(t, "access_log off;\n"+body)
			run(naddr)
			time.Sleep(100 * time.Millisecond)
			raw, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			prefix := regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] \d+#\d+: \*\d+ `)
			var want []string
			for _, l := range strings.Split(string(raw), "\n") {
				if loc := prefix.FindStringIndex(l); loc != nil {
					want = append(want, strings.ReplaceAll(l[loc[1]:], naddr, "PROXY"))
				}
			}

			port := freePort(t)
			gaddr := fmt.Sprintf("127.0.0.1:%d", port)
			logs := startProxyLogged(t, "events {}\nhttp {\naccess_log off;\n"+strings.ReplaceAll(body, "{ADDR}", gaddr)+"}\n")
			run(gaddr)
			var got []string
			for _, l := range errorLines(t, logs) {
				got = append(got, strings.ReplaceAll(l, gaddr, "PROXY"))
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("gproxy:\n%s\nnginx:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
