package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestAccessLog runs gRPC calls (OK, an error status from the backend,
// UNAVAILABLE from a dead backend) and a `return` over HTTP/1.1 through the
// proxy, and checks the access log line of each.
func TestAccessLog(t *testing.T) {
	if *proxyFlag != "gproxy" {
		t.Skip("$grpc_status is gproxy's; nginx would reject the log_format")
	}
	live := startBackend(t, "live")
	dead := &backend{name: "dead", addr: freeAddr(t)}
	addr := freeAddr(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	startProxy(t, upstreamBlock("backends", []*backend{live})+upstreamBlock("dead", []*backend{dead})+fmt.Sprintf(`
log_format grpc '$status $grpc_status $upstream_addr $upstream_status $body_bytes_sent '
                '"$request" $request_time "$grpc_message"';
server {
    listen %s http2;
    access_log %s grpc;
    location = /healthz {
        return 200 "ok";
    }
    location /dead. {
        grpc_pass grpc://dead;
    }
    location / {
        grpc_pass grpc://backends;
    }
}
`, addr, logPath))
	cc := dial(t, addr)
	tc := testpb.NewTestServiceClient(cc)
	ctx := testCtx(t, 20*time.Second)

	ok, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 10})
	if err != nil {
		t.Fatalf("ok call: %v", err)
	}
	okBody := 5 + proto.Size(ok) // one length-prefixed message
	_, err = tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: 3, Message: "bad input"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("error call: %v, want InvalidArgument", err)
	}
	// A method under /dead. goes to the dead upstream.
	err = cc.Invoke(ctx, "/dead.Service/Call", &testpb.Empty{}, &testpb.Empty{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("dead backend: %v, want Unavailable", err)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	lines := waitLogLines(t, logPath, 4)
	// The log escapes '"' as nginx does.
	msg := regexp.QuoteMeta(`upstream \x22dead\x22: connect to ` + dead.addr + ` failed: connection refused`)
	rt := `\d+\.\d{3}`
	want := []string{
		`^200 0 ` + live.addr + ` 200 ` + fmt.Sprint(okBody) + ` "POST /grpc.testing.TestService/UnaryCall HTTP/2.0" ` + rt + ` "-"$`,
		`^200 3 ` + live.addr + ` 200 0 "POST /grpc.testing.TestService/UnaryCall HTTP/2.0" ` + rt + ` "bad input"$`,
		`^502 14 ` + dead.addr + ` 502 0 "POST /dead.Service/Call HTTP/2.0" ` + rt + ` "` + msg + `"$`,
		`^200 - - - 2 "GET /healthz HTTP/1.1" ` + rt + ` "-"$`,
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

// waitLogLines waits (bounded) until path holds at least n lines: gproxy
// writes buffered lines within 100 ms.
func waitLogLines(t *testing.T, path string, n int) []string {
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

// TestAccessLogUserVariables: a configuration that defines $grpc_status
// itself (the map nginx users write for gRPC logging) gets its own
// definition, not gproxy's variable of the same name; $upstream_trailer_*,
// $upstream_http_* and $sent_trailer_* are the fields of the upstream's
// response and of the answer. Run against nginx too.
func TestAccessLogUserVariables(t *testing.T) {
	live := startBackend(t, "live")
	addr := freeAddr(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	startProxy(t, upstreamBlock("backends", []*backend{live})+fmt.Sprintf(`
map $upstream_trailer_grpc_status $grpc_status {
    default $upstream_trailer_grpc_status;
    ""      none;
}
log_format g 'status=$grpc_status up=$upstream_http_grpc_status sent=$sent_trailer_grpc_status ct=$upstream_http_content_type';
server {
    listen %s http2;
    access_log %s g;
    location / {
        grpc_pass grpc://backends;
    }
}
`, addr, logPath))
	cc := dial(t, addr)
	tc := testpb.NewTestServiceClient(cc)
	ctx := testCtx(t, 20*time.Second)
	if _, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 10}); err != nil {
		t.Fatalf("ok call: %v", err)
	}
	lines := waitLogLines(t, logPath, 1)
	want := "status=0 up=- sent=0 ct=application/grpc"
	if lines[0] != want {
		t.Errorf("log line %q, want %q", lines[0], want)
	}
	_, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: 3, Message: "bad input"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("error call: %v, want InvalidArgument", err)
	}
	lines = waitLogLines(t, logPath, 2)
	// grpc-go answers an error with no message as trailers-only: nginx
	// reads those fields as headers.
	want = "status=none up=3 sent=- ct=application/grpc"
	if lines[1] != want {
		t.Errorf("log line %q, want %q", lines[1], want)
	}
}
