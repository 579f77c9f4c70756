package e2e

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gproxy/gproxy/proxy/nettest"
)

// grpcErrorPages is the gRPC error-page pattern NGINX's blog and NGINX
// Gateway Fabric publish, for 502 and 504, plus a 503 page for upstream
// answers caught by grpc_intercept_errors.
const grpcErrorPages = `
    error_page 502 = /error502grpc;
    error_page 504 = /error504grpc;
    error_page 503 = @unavailable;
    error_page 403 = /error403grpc;
    location = /error403grpc {
        internal;
        default_type application/grpc;
        add_header grpc-status 7;
        add_header grpc-message "forbidden by policy";
        return 204;
    }
    location = /error502grpc {
        internal;
        default_type application/grpc;
        add_header grpc-status 14;
        add_header grpc-message "unavailable";
        return 204;
    }
    location = /error504grpc {
        internal;
        default_type application/grpc;
        add_header grpc-status 4;
        add_header grpc-message "deadline exceeded";
        return 204;
    }
    location @unavailable {
        default_type application/grpc;
        add_header grpc-status 8 always;
        add_header grpc-message "busy" always;
        return 204;
    }
`

// TestErrorPageGRPC: for each way a call fails before the backend answers
// (connection refused, no live upstream, grpc_read_timeout, an upstream
// HTTP 503 with grpc_intercept_errors, a refusal of the access phase), a
// grpc-go client gets exactly the
// status and message the configured error page sets. nginx sends the page
// as HTTP 204, which grpc-go reports as Unknown: the documented
// difference.
func TestErrorPageGRPC(t *testing.T) {
	refused := freeAddr(t) // nothing listens there
	// The slow backend answers after 2 s, past grpc_read_timeout.
	slow := startH2C(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	http503 := startH2C(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	addr := freeAddr(t)
	startProxy(t, fmt.Sprintf(`
upstream refused { server %s; }
upstream down { server %s down; }
upstream slow { server %s; }
upstream busy { server %s; }
server {
    listen %s http2;
    %s
    location /refused/ { grpc_pass grpc://refused; }
    location /down/ { grpc_pass grpc://down; }
    location /slow/ { grpc_pass grpc://slow; grpc_read_timeout 300ms; }
    location /busy/ { grpc_pass grpc://busy; grpc_intercept_errors on; }
    location /denied/ { deny all; grpc_pass grpc://busy; }
}
`, refused, refused, slow, http503, addr, grpcErrorPages))
	if differs(t, "nginx", "nginx answers the error page with HTTP 204, which gRPC clients report as Unknown") {
		return
	}
	cc := dial(t, addr)
	tests := []struct {
		name string
		path string
		code codes.Code
		msg  string
	}{
		{"refused", "/refused/Call", codes.Unavailable, "unavailable"},
		{"no live upstreams", "/down/Call", codes.Unavailable, "unavailable"},
		{"read timeout", "/slow/Call", codes.DeadlineExceeded, "deadline exceeded"},
		{"upstream 503 intercepted", "/busy/Call", codes.ResourceExhausted, "busy"},
		{"access phase refusal (deny)", "/denied/Call", codes.PermissionDenied, "forbidden by policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t, 10*time.Second)
			var out testpb.SimpleResponse
			in := &testpb.SimpleRequest{}
			err := cc.Invoke(ctx, tt.path, in, &out)
			st := status.Convert(err)
			if st.Code() != tt.code || st.Message() != tt.msg {
				t.Fatalf("got %v %q, want %v %q", st.Code(), st.Message(), tt.code, tt.msg)
			}
		})
	}
}

// TestAddHeaderGRPC: add_header reaches the response headers and
// add_trailer the trailers of a proxied call; a trailers-only error gproxy
// makes carries nginx's 502, so add_header without always adds nothing to
// it; a location that defines its own add_header does not inherit the
// server's.
func TestAddHeaderGRPC(t *testing.T) {
	bs := startBackends(t, 1)
	refused := freeAddr(t)
	addr := freeAddr(t)
	startProxy(t, upstreamBlock("backends", bs)+fmt.Sprintf(`
upstream refused { server %s; }
server {
    listen %s http2;
    add_header x-server-level yes;
    location / {
        grpc_pass grpc://backends;
        add_header x-added $request_method;
        add_trailer x-trailer $upstream_trailer_grpc_status;
    }
    location /refused/ {
        grpc_pass grpc://refused;
    }
}
`, refused, addr))
	cc := dial(t, addr)
	ctx := testCtx(t, 10*time.Second)
	var hdr, tr metadata.MD
	var out testpb.SimpleResponse
	err := cc.Invoke(ctx, "/grpc.testing.TestService/UnaryCall", &testpb.SimpleRequest{}, &out,
		grpc.Header(&hdr), grpc.Trailer(&tr))
	if err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get("x-added"); len(got) != 1 || got[0] != "POST" {
		t.Errorf("x-added = %q, want POST", got)
	}
	if got := hdr.Get("x-server-level"); len(got) != 0 {
		t.Errorf("x-server-level = %q: a location with add_header of its own inherits none", got)
	}
	if differs(t, "nginx", "nginx sends add_trailer only after a body it produces") {
		return
	}
	if got := tr.Get("x-trailer"); len(got) != 1 || got[0] != "0" {
		t.Errorf("x-trailer = %q, want 0", got)
	}
	hdr, tr = nil, nil
	err = cc.Invoke(ctx, "/refused/Call", &testpb.SimpleRequest{}, &out, grpc.Header(&hdr), grpc.Trailer(&tr))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("refused: %v", err)
	}
	if got := append(hdr.Get("x-server-level"), tr.Get("x-server-level")...); len(got) != 0 {
		t.Errorf("trailers-only 502: x-server-level = %q, want none (add_header without always)", got)
	}
}

// TestErrorPageHTTP1: nginx's stock error_page for 50x, served by a
// location that returns (gproxy serves no files), over HTTP/1.1, with
// add_header always on the error and add_header on a return.
func TestErrorPageHTTP1(t *testing.T) {
	addr := freeAddr(t)
	startProxy(t, fmt.Sprintf(`
server {
    listen %s;
    add_header x-always yes always;
    error_page 500 502 503 504 /50x.html;
    location = /50x.html { return 200 "sorry\n"; }
    location /down { return 503; }
    location /ok { add_header x-ok $uri; return 200 "fine\n"; }
    location = /secret { internal; return 200 "secret\n"; }
    location /missing { error_page 404 = @gone; return 404; }
    location @gone { return 410 "gone\n"; }
}
`, addr))
	get := func(path string) (*http.Response, string) {
		t.Helper()
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("/down")
	if resp.StatusCode != 503 || body != "sorry\n" {
		t.Errorf("/down: %d %q, want 503 \"sorry\\n\"", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Always") != "yes" {
		t.Errorf("/down: x-always %q: the page's location defines no add_header, so the server's (always) applies", resp.Header.Get("X-Always"))
	}
	resp, body = get("/secret")
	if resp.StatusCode != 404 {
		t.Errorf("/secret (internal): %d %q, want 404", resp.StatusCode, body)
	}
	resp, body = get("/missing")
	if resp.StatusCode != 410 || body != "gone\n" {
		t.Errorf("/missing (error_page 404 = @gone): %d %q, want 410 \"gone\\n\"", resp.StatusCode, body)
	}
	resp, body = get("/ok")
	if resp.StatusCode != 200 || body != "fine\n" || resp.Header.Get("X-Ok") != "/ok" || resp.Header.Get("Server") == "" {
		t.Errorf("/ok: %d %q headers %v", resp.StatusCode, body, resp.Header)
	}
}

// startH2C runs an HTTP/2 (h2c) backend with handler h: one that answers
// HTTP 503 as a backend behind a busy balancer does, or one too slow.
func startH2C(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h2c.NewHandler(h, &http2.Server{})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
