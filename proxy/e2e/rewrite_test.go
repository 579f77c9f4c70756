package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// echoBackend is an HTTP/2 backend that answers every request with a gRPC
// trailers-only OK whose headers say what it received (x-path,
// x-authority, x-who).
func echoBackend(t *testing.T, who string) string {
	return startH2C(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("content-type", "application/grpc")
		h.Set("x-path", r.URL.RequestURI())
		h.Set("x-authority", r.Host)
		h.Set("x-who", who)
		h.Set("grpc-status", "0")
		w.WriteHeader(http.StatusOK)
	})
}

// h2cGet sends a gRPC-shaped POST over HTTP/2 without TLS and returns the
// response headers.
func h2cCall(t *testing.T, addr, path string) *http.Response {
	t.Helper()
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, a string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, a)
	}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+path, strings.NewReader(""))
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	resp.Body.Close()
	return resp
}

// TestRewriteAndVariables: set, rewrite (last, break, redirect), break,
// if with grpc_pass, and grpc_pass with variables resolved as nginx does
// (an upstream block of that name first, else an address), checked by
// what the backend receives.
func TestRewriteAndVariables(t *testing.T) {
	a := echoBackend(t, "a")
	b := echoBackend(t, "b")
	addr := freeAddr(t)
	startProxy(t, fmt.Sprintf(`
upstream ua { server %s; }
upstream ub { server %s; }
server {
    listen %s http2;
    rewrite ^/old/(.*)$ /new/$1 last;
    location /new/ {
        grpc_pass grpc://ua;
    }
    location /brk/ {
        rewrite ^/brk/(.*)$ /moved/$1 break;
        grpc_pass grpc://ua;
    }
    location /redir/ {
        rewrite ^ /elsewhere permanent;
    }
    location /dyn/ {
        set $backend ua;
        if ($http_x_backend = b) {
            set $backend ub;
        }
        grpc_pass grpc://$backend;
    }
    location /addr/ {
        grpc_pass grpc://$http_x_target;
    }
    location /ifpass/ {
        if ($http_x_backend = b) {
            grpc_pass grpc://ub;
        }
        grpc_pass grpc://ua;
    }
    location /args/ {
        set $args c=$arg_c;
        grpc_pass grpc://ua;
    }
}
`, a, b, addr))
	check := func(path, hdrKey, hdrVal, wantWho, wantPath string) {
		t.Helper()
		tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, x string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, x)
		}}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+path, strings.NewReader(""))
		req.Header.Set("content-type", "application/grpc")
		if hdrKey != "" {
			req.Header.Set(hdrKey, hdrVal)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("x-who"); got != wantWho {
			t.Errorf("%s (%s: %s): backend %q, want %q (status %d)", path, hdrKey, hdrVal, got, wantWho, resp.StatusCode)
		}
		if got := resp.Header.Get("x-path"); wantPath != "" && got != wantPath {
			t.Errorf("%s: backend got :path %q, want %q", path, got, wantPath)
		}
	}
	check("/old/x.Svc/M", "", "", "a", "/new/x.Svc/M")
	check("/brk/x.Svc/M", "", "", "a", "/moved/x.Svc/M")
	check("/dyn/S/M", "", "", "a", "/dyn/S/M")
	check("/dyn/S/M", "x-backend", "b", "b", "")
	check("/addr/S/M", "x-target", b, "b", "")
	check("/ifpass/S/M", "x-backend", "b", "b", "")
	check("/ifpass/S/M", "", "", "a", "")
	check("/args/S/M?c=1&d=2", "", "", "a", "/args/S/M?c=1")

	resp := h2cCall(t, addr, "/redir/x")
	if resp.StatusCode != 301 || !strings.HasSuffix(resp.Header.Get("location"), "/elsewhere") {
		t.Errorf("/redir/x: %d %q, want 301 to /elsewhere", resp.StatusCode, resp.Header.Get("location"))
	}
}
