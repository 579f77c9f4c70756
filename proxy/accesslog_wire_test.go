package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/parser/config"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// logSite is a proxy whose configuration is a template with one %d (the
// port) and the prefix directory for relative paths (logs/...).
type logSite struct {
	s    *Server
	dir  string
	addr string
	port int
}

func (ls *logSite) load(t *testing.T, conf string) *config.Config {
	t.Helper()
	cfg, _, err := parser.LoadBytes(filepath.Join(ls.dir, "nginx.conf"), []byte(fmt.Sprintf(conf, ls.port)), parser.Options{Prefix: ls.dir})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg
}

func startLogSite(t *testing.T, conf string) *logSite {
	t.Helper()
	ls := &logSite{dir: t.TempDir(), port: freePort(t)}
	ls.addr = fmt.Sprintf("127.0.0.1:%d", ls.port)
	if err := os.Mkdir(filepath.Join(ls.dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := New(ls.load(t, conf), zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	ls.s = s
	return ls
}

func (ls *logSite) log(name string) string { return filepath.Join(ls.dir, "logs", name) }

// waitLines waits (bounded) until path holds at least n lines; lines reach
// the file within accesslog.DefaultFlush.
func waitLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: want %d lines, have:\n%s", path, n, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// matchLines checks that lines are exactly one match each for want.
func matchLines(t *testing.T, lines []string, want ...string) {
	t.Helper()
	if len(lines) != len(want) {
		t.Errorf("%d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	// A line is written when its stream ends in gproxy, which can be just
	// after the client has its answer, so lines may come in another order.
	used := make([]bool, len(lines))
next:
	for _, re := range want {
		for i, l := range lines {
			if !used[i] && regexp.MustCompile(re).MatchString(l) {
				used[i] = true
				continue next
			}
		}
		t.Errorf("no line matches %s in:\n%s", re, strings.Join(lines, "\n"))
	}
}

const upstreamLogFormat = `log_format up '$status $grpc_status "$upstream_addr" "$upstream_status" ` +
	`"$upstream_connect_time" "$upstream_response_time" $connection_requests';`

// TestAccessLogAttempts: a call retried from a dead server to a live one
// logs both attempts ($upstream_* joined by ", "); a call the client
// cancels before any answer logs 499.
func TestAccessLogAttempts(t *testing.T) {
	live := startBackend(t)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ls := startLogSite(t, `events {}
http {
    `+upstreamLogFormat+`
    access_log logs/up.log up;
    upstream be { server `+dead+`; server `+live.addr+`; }
    server {
        listen 127.0.0.1:%d http2;
        location / { grpc_pass grpc://be; }
    }
}`)
	tc := testgrpc.NewTestServiceClient(dial(t, ls.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("retried call: %v", err)
	}
	// The backend answers nothing until the client sends; the client
	// cancels (RST_STREAM CANCEL; no grpc-timeout, so gproxy's own
	// deadline plays no part).
	short, cancelShort := context.WithCancel(ctx)
	st, err := tc.FullDuplexCall(short)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(200*time.Millisecond, cancelShort)
	if _, err = st.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled call: %v", err)
	}
	ms := `\d+\.\d{3}`
	matchLines(t, waitLines(t, ls.log("up.log"), 2),
		`^200 0 "`+dead+`, `+live.addr+`" "502, 200" "-, `+ms+`" "`+ms+`, `+ms+`" 1$`,
		`^499 - "`+live.addr+`" "-" "`+ms+`" "`+ms+`" 2$`,
	)
}

// TestAccessLogReopen: after the log is renamed, ReopenLogs (USR1) sends
// later lines to a new file at the configured path.
func TestAccessLogReopen(t *testing.T) {
	b := startBackend(t)
	ls := startLogSite(t, `events {}
http {
    log_format short '$request_uri $status';
    access_log logs/access.log short;
    upstream be { server `+b.addr+`; }
    server {
        listen 127.0.0.1:%d http2;
        location / { grpc_pass grpc://be; }
        location = /healthz { return 200 "ok"; }
    }
}`)
	tc := testgrpc.NewTestServiceClient(dial(t, ls.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := tc.EmptyCall(ctx, &testpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	waitLines(t, ls.log("access.log"), 1)
	if err := os.Rename(ls.log("access.log"), ls.log("access.log.1")); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil { // still to the renamed file
		t.Fatal(err)
	}
	// The line is written once the stream has ended in gproxy, which can
	// be just after the client has its answer: wait for it before reopening.
	matchLines(t, waitLines(t, ls.log("access.log.1"), 2),
		`^/grpc.testing.TestService/EmptyCall 200$`, `^/grpc.testing.TestService/UnaryCall 200$`)
	if err := ls.s.ReopenLogs(); err != nil {
		t.Fatal(err)
	}
	get(t, "http://"+ls.addr+"/healthz")
	matchLines(t, waitLines(t, ls.log("access.log"), 1), `^/healthz 200$`)
}

// TestAccessLogReload: a reload that changes the log format keeps logging:
// a stream that began before the reload logs with the old format when it
// ends after it, new streams with the new one, into the same file.
func TestAccessLogReload(t *testing.T) {
	b := startBackend(t)
	conf := `events {}
http {
    log_format short 'FORMAT $request_uri $status';
    access_log logs/access.log short;
    upstream be { server ` + b.addr + `; }
    server {
        listen 127.0.0.1:%d http2;
        location / { grpc_pass grpc://be; }
    }
}`
	ls := startLogSite(t, strings.Replace(conf, "FORMAT", "old", 1))
	tc := testgrpc.NewTestServiceClient(dial(t, ls.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := tc.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 10}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := ls.s.Reload(ls.load(t, strings.Replace(conf, "FORMAT", "new", 1))); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.EmptyCall(ctx, &testpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	st.CloseSend()
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("stream end: %v", err)
	}
	matchLines(t, waitLines(t, ls.log("access.log"), 2),
		`^new /grpc.testing.TestService/EmptyCall 200$`, `^old /grpc.testing.TestService/FullDuplexCall 200$`)
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestHTTP1KeepaliveLimits: on HTTP/1.1, keepalive_requests and
// keepalive_time end the connection after the response that reaches them
// (Connection: close), as in nginx; $connection and $connection_requests
// count per connection.
func TestHTTP1KeepaliveLimits(t *testing.T) {
	ls := startLogSite(t, `events {}
http {
    log_format conn '$connection $connection_requests $status';
    access_log logs/access.log conn;
    server {
        listen 127.0.0.1:%d;
        location = /requests { keepalive_requests 2; return 200 "ok"; }
        location = /time { keepalive_time 300ms; return 200 "ok"; }
    }
}`)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	fetch := func(path string) bool {
		resp, err := hc.Get("http://" + ls.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Close
	}
	if fetch("/requests") || !fetch("/requests") {
		t.Fatal("keepalive_requests 2: want the connection closed after the second response only")
	}
	if fetch("/time") {
		t.Fatal("keepalive_time: closed at once")
	}
	time.Sleep(400 * time.Millisecond)
	if !fetch("/time") {
		t.Fatal("keepalive_time 300ms: the connection was kept after it")
	}
	lines := waitLines(t, ls.log("access.log"), 4)
	var conns []string
	for _, l := range lines {
		conns = append(conns, strings.Fields(l)[0])
	}
	matchLines(t, lines, `^\d+ 1 200$`, `^\d+ 2 200$`, `^\d+ 1 200$`, `^\d+ 2 200$`)
	if len(conns) == 4 && (conns[0] != conns[1] || conns[1] == conns[2] || conns[2] != conns[3]) {
		t.Errorf("$connection %v: want two connections of two requests", conns)
	}
}

// TestHTTP2KeepaliveTime: a stream that starts after keepalive_time is
// served, then the connection sends GOAWAY and closes.
func TestHTTP2KeepaliveTime(t *testing.T) {
	be := startH2Backend(t)
	ls := startLogSite(t, `events {}
http {
    access_log off;
    keepalive_time 300ms;
    upstream be { server `+be.ln.Addr().String()+`; }
    server {
        listen 127.0.0.1:%d http2;
        location / { grpc_pass grpc://be; }
    }
}`)
	u := dialUnary(t, ls.addr)
	if err := u.call(); err != nil {
		t.Fatal(err)
	}
	if !u.c.CanOpen() {
		t.Fatal("GOAWAY before keepalive_time")
	}
	time.Sleep(400 * time.Millisecond)
	if err := u.call(); err != nil {
		t.Fatalf("a stream started after keepalive_time must still be served: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for u.c.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("connection still open past keepalive_time (can open: %v)", u.c.CanOpen())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGRPCBufferSize: each group's connections read with the largest
// grpc_buffer_size of the locations passing to it.
func TestGRPCBufferSize(t *testing.T) {
	cfg, _, err := parser.LoadBytes("/nonexistent/nginx.conf", []byte(`events {}
http {
    access_log off;
    grpc_buffer_size 8k;
    upstream a { server 127.0.0.1:1; }
    upstream b { server 127.0.0.1:2; }
    upstream unused { server 127.0.0.1:3; }
    server {
        listen 127.0.0.1:1 http2;
        location /a1 { grpc_pass grpc://a; }
        location /a2 { grpc_buffer_size 32k; grpc_pass grpc://a; }
        location /b { grpc_buffer_size 2k; grpc_pass grpc://b; }
    }
}`), parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts, _, err := groupOptions(cfg.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for u, o := range opts {
		got[u.u.Name] = o.ReadBufferSize
	}
	want := map[string]int{"a": 32 << 10, "b": 2 << 10, "unused": 0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("upstream %s: read buffer %d, want %d", k, got[k], v)
		}
	}
}

// TestAccessLogShutdownFlushes: lines held in a buffer= buffer (never
// written by time without flush=) reach the file when the server shuts
// down.
func TestAccessLogShutdownFlushes(t *testing.T) {
	b := startBackend(t)
	ls := startLogSite(t, `events {}
http {
    log_format short '$request_uri $status $grpc_status';
    access_log logs/access.log short buffer=64k;
    upstream be { server `+b.addr+`; }
    server {
        listen 127.0.0.1:%d http2;
        location / { grpc_pass grpc://be; }
    }
}`)
	cc := dial(t, ls.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	cc.Close()
	time.Sleep(200 * time.Millisecond) // longer than the default flush; buffer= has none
	if b, _ := os.ReadFile(ls.log("access.log")); len(b) != 0 {
		t.Fatalf("written before shutdown: %q", b)
	}
	if err := ls.s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(ls.log("access.log"))
	if got := string(b2); got != "/grpc.testing.TestService/EmptyCall 200 0\n" {
		t.Fatalf("after shutdown the log holds %q", got)
	}
}

// TestAccessLogOpenError: as nginx, a log file that cannot be opened (here
// the default logs/access.log under a prefix without logs/) stops the
// configuration from loading, naming the file.
func TestAccessLogOpenError(t *testing.T) {
	dir := t.TempDir()
	cfg, _, err := parser.LoadBytes(filepath.Join(dir, "nginx.conf"), []byte(`events {}
http { server { listen 127.0.0.1:1; return 200; } }`), parser.Options{Prefix: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, nil)
	want := `open() "` + filepath.Join(dir, "logs/access.log") + `" failed`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("New: %v, want an error containing %s", err, want)
	}
}
