package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
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
    location /sethost/ {
        grpc_set_header Host custom;
        grpc_pass grpc://ua;
    }
    location /unix/ {
        grpc_pass grpc://unix:%s;
    }
}
`, a, b, addr, unixBackend(t, "u")))
	check := func(path, hdrKey, hdrVal, wantWho, wantPath string, wantAuthority ...string) {
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
		if got := resp.Header.Get("x-authority"); len(wantAuthority) > 0 && got != wantAuthority[0] {
			t.Errorf("%s: backend got authority %q, want %q", path, got, wantAuthority[0])
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
	check("/dyn/S/M", "", "", "a", "", "ua")
	check("/sethost/S/M", "", "", "a", "", "custom")
	check("/unix/S/M", "", "", "u", "", "localhost")

	resp := h2cCall(t, addr, "/redir/x")
	if resp.StatusCode != 301 || !strings.HasSuffix(resp.Header.Get("location"), "/elsewhere") {
		t.Errorf("/redir/x: %d %q, want 301 to /elsewhere", resp.StatusCode, resp.Header.Get("location"))
	}
}

// unixBackend is echoBackend on a Unix socket; it returns the socket path.
func unixBackend(t *testing.T, who string) string {
	t.Helper()
	path := t.TempDir() + "/grpc.sock"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/grpc")
		w.Header().Set("x-authority", r.Host)
		w.Header().Set("x-who", who)
		w.Header().Set("grpc-status", "0")
		w.WriteHeader(http.StatusOK)
	}), &http2.Server{})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return path
}

// TestReturnHeadersHTTP2: add_header and add_trailer on a `return` over
// HTTP/2, with nginx's status rule (always or not) and inheritance.
func TestReturnHeadersHTTP2(t *testing.T) {
	addr := freeAddr(t)
	startProxy(t, fmt.Sprintf(`
server {
    listen %s http2;
    add_header x-server yes;
    location /ok {
        add_header x-uri $uri;
        add_trailer x-done $request_method;
        return 200 "fine\n";
    }
    location /err {
        add_header x-plain no;
        add_header x-always yes always;
        return 503 "busy\n";
    }
    location /inherit {
        return 200 "ok\n";
    }
    location /cors {
        add_header x-loc yes;
        if ($request_method = OPTIONS) {
            add_header Access-Control-Allow-Origin *;
            add_header Access-Control-Max-Age 1728000;
            return 204;
        }
        return 200 "get\n";
    }
}
`, addr))
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, a string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, a)
	}}
	defer tr.CloseIdleConnections()
	do := func(method, path string) (*http.Response, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	get := func(path string) (*http.Response, string) { t.Helper(); return do("GET", path) }
	resp, body := get("/ok")
	if body != "fine\n" || resp.Header.Get("x-uri") != "/ok" || resp.Header.Get("x-server") != "" {
		t.Errorf("/ok: %q headers %v", body, resp.Header)
	}
	if got := resp.Trailer.Get("x-done"); got != "GET" {
		t.Errorf("/ok: trailer x-done %q, want GET (trailers %v)", got, resp.Trailer)
	}
	resp, _ = get("/err")
	if resp.StatusCode != 503 || resp.Header.Get("x-plain") != "" || resp.Header.Get("x-always") != "yes" {
		t.Errorf("/err: %d headers %v", resp.StatusCode, resp.Header)
	}
	resp, _ = get("/inherit")
	if resp.Header.Get("x-server") != "yes" || resp.Header.Get("server") == "" || resp.Header.Get("date") == "" {
		t.Errorf("/inherit: headers %v", resp.Header)
	}
	// The grpc-web CORS preflight: the if block's add_header replace the
	// location's when its condition holds.
	resp, _ = do("OPTIONS", "/cors")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("x-loc") != "" {
		t.Errorf("OPTIONS /cors: %d headers %v", resp.StatusCode, resp.Header)
	}
	resp, _ = get("/cors")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("x-loc") != "yes" {
		t.Errorf("GET /cors: %d headers %v", resp.StatusCode, resp.Header)
	}
}
