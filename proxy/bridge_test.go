package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/gproxy/gproxy/proxy/nettest"
	"github.com/gproxy/gproxy/proxy/nginxtest"
	"github.com/gproxy/gproxy/upstream/resolve/dnstest"
)

// startH2C serves h on a cleartext HTTP/2 (prior knowledge) listener and
// returns its address.
func startH2C(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h2c.NewHandler(h, &http2.Server{}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// rawHTTP1 sends one request as written (HTTP/1.0 or 1.1) on a new
// connection and returns the status line, the fields and the body.
func rawHTTP1(t *testing.T, addr, request string) (status string, hd http.Header, body string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, request); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("%q: %v", request, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for k, vs := range res.Trailer {
		res.Header["Trailer-"+k] = vs
	}
	return res.Status, res.Header, string(b)
}

// TestHTTP1ThroughGRPCPassMatchesNginx: HTTP/1.0 and HTTP/1.1 requests to
// grpc_pass locations reach the HTTP/2 backends as nginx sends them, with
// grpc_next_upstream (http_404, http_500, invalid_header for a reset
// stream), max_fails, error pages, and nginx's 502 for a dead upstream; the
// same configuration through real nginx gives the same statuses and
// bodies.
func TestHTTP1ThroughGRPCPassMatchesNginx(t *testing.T) {
	// The backends are gproxy's own HTTP/2 `return` servers, as in nginx's
	// grpc_next_upstream.t (`return 444` resets the stream); the echo and
	// trailers backend is Go's.
	b1 := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startProxy(t, fmt.Sprintf(`events {}
http {
    access_log off;
    server {
        listen %s http2;
        location / { return 404; }
        location /ok { return 200 "AND-THIS\n"; }
        location /500 { return 500; }
        location /reset { return 444; }
    }
}
`, b1))
	var b2 string
	b2go := startH2C(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/echo" {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s host=%s te=%q conn=%q body=%q\n", r.Method, r.URL.RequestURI(), r.Proto,
				r.Host, r.Header.Get("Te"), r.Header.Get("X-Conn-Only"), b)
			return
		}
		if r.URL.Path == "/trailers" {
			w.Header().Set("Trailer", "Grpc-Status")
			io.WriteString(w, "body\n")
			w.(http.Flusher).Flush() // no content-length: the body is streamed
			w.Header().Set("Grpc-Status", "0")
			return
		}
		io.WriteString(w, "SEE-THIS\n")
	})
	b2 = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startProxy(t, fmt.Sprintf(`events {}
http {
    access_log off;
    server {
        listen %s http2;
        location / { return 200 "SEE-THIS\n"; }
        location /all/ { return 404; }
    }
}
`, b2))
	body := `
    upstream u {
        server %[2]s max_fails=2;
        server %[3]s;
    }
    upstream u2 {
        server %[2]s;
        server %[3]s;
    }
    server {
        listen %[1]s;
        location / {
            grpc_pass u;
            grpc_next_upstream http_500 http_404 invalid_header;
        }
        location /echo { grpc_pass grpc://%[4]s; }
        location /trailers { grpc_pass grpc://%[4]s; }
        location /dead { grpc_pass grpc://127.0.0.1:9; }
        location /all/ {
            grpc_pass u2;
            grpc_next_upstream http_500 http_404;
            error_page 404 /all/404;
            grpc_intercept_errors on;
        }
        location /all/404 { return 200 "$upstream_addr\n"; }
    }
`
	_, naddr := nginxtest.Start(t, "access_log off;\n"+fmt.Sprintf(body, "{ADDR}", b1, b2, b2go))
	gaddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	logFile := filepath.Join(t.TempDir(), "access.log")
	// The access log only for the locations that need it: $upstream_addr
	// in the error page must not depend on it.
	s := startProxy(t, "events {}\nhttp {\naccess_log off;\n"+strings.Replace(fmt.Sprintf(body, gaddr, b1, b2, b2go),
		"location / {", "location / {\n            access_log "+logFile+";", 1)+"}\n")

	get := func(addr, path, proto string) string {
		req := "GET " + path + " " + proto + "\r\nHost: localhost\r\n"
		if proto == "HTTP/1.1" {
			req += "Connection: close\r\n"
		}
		st, _, b := rawHTTP1(t, addr, req+"\r\n")
		return st + " " + b
	}
	steps := []struct{ path, proto string }{
		{"/", "HTTP/1.0"}, {"/", "HTTP/1.1"}, // 404 on b1: next upstream
		{"/ok", "HTTP/1.0"}, {"/ok", "HTTP/1.0"}, // 404 is no failure: b1 stays up
		{"/reset", "HTTP/1.1"}, {"/reset", "HTTP/1.1"}, // a reset stream is invalid_header
		{"/500", "HTTP/1.0"}, {"/500", "HTTP/1.0"}, // two 500s: b1 down (max_fails=2)
		{"/ok", "HTTP/1.0"}, {"/ok", "HTTP/1.0"},
		{"/dead", "HTTP/1.0"},
		{"/all/rr", "HTTP/1.0"},
	}
	for _, st := range steps {
		n := get(naddr, st.path, st.proto)
		g := get(gaddr, st.path, st.proto)
		n = strings.ReplaceAll(n, "nginx/1.22.1", "gproxy")
		if n != g {
			t.Errorf("%s %s:\nnginx:  %q\ngproxy: %q", st.proto, st.path, n, g)
		}
	}

	// The request as the backend sees it: method, target, body; fields
	// the Connection field names pass, as nginx passes them.
	req := "POST /echo?a=1 HTTP/1.1\r\nHost: example.test\r\nConnection: close, X-Conn-Only\r\nX-Conn-Only: 1\r\n" +
		"TE: trailers\r\nContent-Length: 5\r\n\r\nhello"
	_, _, nb := rawHTTP1(t, naddr, req)
	_, _, gb := rawHTTP1(t, gaddr, req)
	want := `POST /echo?a=1 HTTP/2.0 host=` + b2go + ` te="trailers" conn="1" body="hello"` + "\n"
	if gb != want || nb != want {
		t.Errorf("request at the backend:\nnginx:  %q\ngproxy: %q\nwant:   %q", nb, gb, want)
	}

	// Trailers reach an HTTP/1.1 client in the chunked encoding.
	_, hd, tb := rawHTTP1(t, gaddr, "GET /trailers HTTP/1.1\r\nHost: localhost\r\nTE: trailers\r\nConnection: close\r\n\r\n")
	if tb != "body\n" || hd.Get("Trailer-Grpc-Status") != "0" {
		t.Errorf("trailers over HTTP/1.1: body %q, fields %v", tb, hd)
	}

	// The access log has the client's protocol.
	s.Close()
	log, _ := os.ReadFile(logFile)
	if !strings.Contains(string(log), `"GET /ok HTTP/1.0" 200`) || !strings.Contains(string(log), `"GET /reset HTTP/1.1" 200`) {
		t.Errorf("access log:\n%s", log)
	}
}

// TestGRPCPassVariableResolved: a grpc_pass whose variables give a host
// name is resolved by the resolver at run time, as nginx does; without a
// resolver the request fails with 502.
func TestGRPCPassVariableResolved(t *testing.T) {
	d := dnstest.Start(t)
	d.Set("backend.test", 30, "A 127.0.0.1")
	be := startH2C(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "host="+r.Host+"\n") })
	_, port, _ := net.SplitHostPort(be)
	body := `
    resolver %[2]s;
    server {
        listen %[1]s;
        location / { grpc_pass $host:%[3]s; }
        location /arg { grpc_pass $arg_b; }
    }
    server {
        listen %[4]s;
        location / { grpc_pass $host:%[3]s; }
    }
`
	_, naddr := nginxtest.Start(t, "access_log off;\n"+fmt.Sprintf(body, "{ADDR}", d.Addr, port, fmt.Sprintf("127.0.0.1:%d", freePort(t))))
	gaddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startProxy(t, "events {}\nhttp {\n"+fmt.Sprintf(body, gaddr, d.Addr, port, fmt.Sprintf("127.0.0.1:%d", freePort(t)))+"}\n")
	for _, c := range []struct{ host, path, want string }{
		{"backend.test", "/", "200 OK host=backend.test:" + port + "\n"},
		{"localhost", "/arg?b=grpc://backend.test:" + port, "200 OK host=backend.test:" + port + "\n"},
		{"missing.test", "/", "502 Bad Gateway"},
	} {
		for _, addr := range []string{naddr, gaddr} {
			st, _, b := rawHTTP1(t, addr, "GET "+c.path+" HTTP/1.0\r\nHost: "+c.host+"\r\n\r\n")
			got := st + " " + b
			if !strings.HasPrefix(got, c.want) {
				t.Errorf("%s via %s: %q, want %q", c.path, addr, got, c.want)
			}
		}
	}
}
