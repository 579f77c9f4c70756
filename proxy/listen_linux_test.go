//go:build linux

package proxy

import (
	"bufio"
	"fmt"
	"github.com/gproxy/gproxy/proxy/nettest"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/proxy/route"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"
)

// routeListener parses one server listening on addr with params and
// returns the socket route plans for it.
func routeListener(t *testing.T, addr, params string) *route.Listener {
	t.Helper()
	conf := fmt.Sprintf("events {}\nhttp {\n server {\n  listen %s %s;\n  return 200 ok;\n }\n}\n", addr, params)
	cfg, _, err := parser.LoadBytes(filepath.Join(t.TempDir(), "nginx.conf"), []byte(conf), parser.Options{})
	if err != nil {
		t.Fatalf("%s %s: %v", addr, params, err)
	}
	tb, err := route.New(cfg.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	if ls := tb.Listeners(); len(ls) == 1 {
		return ls[0]
	}
	t.Fatalf("%s %s: %d listeners", addr, params, len(tb.Listeners()))
	return nil
}

// getsockopt reads an integer socket option of c.
func getsockopt(t *testing.T, c syscall.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatalf("getsockopt(%d, %d): %v", level, opt, gerr)
	}
	return v
}

// acceptOne connects to ln, sends a byte (so that a deferred accept
// returns) and returns the server's side of the connection.
func acceptOne(t *testing.T, ln *listener) net.Conn {
	t.Helper()
	type deadliner interface{ SetDeadline(time.Time) error }
	ln.ln.(deadliner).SetDeadline(time.Now().Add(5 * time.Second))
	cc, err := net.DialTimeout(ln.ln.Addr().Network(), ln.ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	if _, err := cc.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	sc, err := ln.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return sc
}

// sockoptWant is one socket option a test expects on the listening socket
// and, when inherited, on an accepted connection too.
type sockoptWant struct {
	name       string
	level, opt int
	want       int
	inherited  bool
}

// TestListenSocketOptions: each listen parameter shows in getsockopt on
// the listening socket, and those that Linux passes on (buffers, TCP
// keepalive) on an accepted connection, which is accepted the way the
// accept loop does it. SO_KEEPALIVE stays off unless so_keepalive asks
// for it, although Go turns it on by default.
func TestListenSocketOptions(t *testing.T) {
	keepalive := func(on int) sockoptWant {
		return sockoptWant{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, on, true}
	}
	tcp := func(name string, opt, want int, inherited bool) sockoptWant {
		return sockoptWant{name, unix.IPPROTO_TCP, opt, want, inherited}
	}
	for _, tc := range []struct {
		host, params string
		want         []sockoptWant
	}{
		{"127.0.0.1", "http2", []sockoptWant{keepalive(0)}},
		{"127.0.0.1", "so_keepalive=off", []sockoptWant{keepalive(0)}},
		{"127.0.0.1", "so_keepalive=on", []sockoptWant{keepalive(1)}},
		{"127.0.0.1", "so_keepalive=30m:15:4", []sockoptWant{keepalive(1),
			tcp("TCP_KEEPIDLE", unix.TCP_KEEPIDLE, 1800, true),
			tcp("TCP_KEEPINTVL", unix.TCP_KEEPINTVL, 15, true),
			tcp("TCP_KEEPCNT", unix.TCP_KEEPCNT, 4, true)}},
		{"127.0.0.1", "so_keepalive=1h::", []sockoptWant{keepalive(1), tcp("TCP_KEEPIDLE", unix.TCP_KEEPIDLE, 3600, true)}},
		// Linux doubles the buffer sizes asked for (for its bookkeeping)
		// and reports the doubled value.
		{"127.0.0.1", "rcvbuf=64k sndbuf=96k", []sockoptWant{
			{"SO_RCVBUF", unix.SOL_SOCKET, unix.SO_RCVBUF, 2 * 64 << 10, true},
			{"SO_SNDBUF", unix.SOL_SOCKET, unix.SO_SNDBUF, 2 * 96 << 10, true}}},
		{"127.0.0.1", "deferred", []sockoptWant{tcp("TCP_DEFER_ACCEPT", unix.TCP_DEFER_ACCEPT, 1, false)}},
		{"127.0.0.1", "fastopen=16", []sockoptWant{tcp("TCP_FASTOPEN", unix.TCP_FASTOPEN, 16, false)}},
		{"127.0.0.1", "reuseport", []sockoptWant{{"SO_REUSEPORT", unix.SOL_SOCKET, unix.SO_REUSEPORT, 1, false}}},
		{"127.0.0.1", "bind", []sockoptWant{keepalive(0)}},
		{"[::1]", "", []sockoptWant{{"IPV6_V6ONLY", unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1, false}}},
		{"[::1]", "ipv6only=off", []sockoptWant{{"IPV6_V6ONLY", unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0, false}}},
	} {
		name := tc.host + " " + tc.params
		t.Run(name, func(t *testing.T) {
			addr := fmt.Sprintf("%s:%d", tc.host, freePortOn(t, tc.host))
			ln, err := listen(routeListener(t, addr, tc.params))
			if err != nil {
				t.Fatal(err)
			}
			defer ln.ln.Close()
			if len(ln.alerts) != 0 {
				t.Errorf("alerts: %v", ln.alerts)
			}
			sc := acceptOne(t, ln)
			for _, w := range tc.want {
				if got := getsockopt(t, ln.ln.(syscall.Conn), w.level, w.opt); got != w.want {
					t.Errorf("listening socket: %s = %d, want %d", w.name, got, w.want)
				}
				if !w.inherited {
					continue
				}
				if got := getsockopt(t, sc.(syscall.Conn), w.level, w.opt); got != w.want {
					t.Errorf("accepted connection: %s = %d, want %d", w.name, got, w.want)
				}
			}
		})
	}
}

// freePortOn returns a port free on host ("127.0.0.1" or "[::1]"),
// skipping the test when host cannot be listened on.
func freePortOn(t *testing.T, host string) int {
	t.Helper()
	l, err := nettest.Listen("tcp", host)
	if err != nil {
		t.Skipf("no %s: %v", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestListenOptionsServe: a server whose listen carries every socket
// option still serves requests (a deferred accept hands over the
// connection once the client's first bytes arrive).
func TestListenOptionsServe(t *testing.T) {
	port := freePort(t)
	s := startProxy(t, fmt.Sprintf(`events {}
http {
  server {
    listen 127.0.0.1:%d http2 bind deferred fastopen=8 rcvbuf=64k sndbuf=64k so_keepalive=1m:10:3 backlog=64;
    location = /healthz { return 200 "ok"; }
  }
}
`, port))
	nc := dialRaw(t, s.Addrs()[0].String())
	io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(bufio.NewReader(nc))
	if !strings.HasPrefix(string(b), "HTTP/1.1 200") || !strings.HasSuffix(string(b), "ok") {
		t.Fatalf("response %q", b)
	}
}

// TestListenOptionAlerts: an option the kernel refuses (TCP options on a
// unix socket, a keepalive time beyond Linux's limit) does not stop the
// listener; it is logged, as nginx logs "setsockopt(...) failed, ignored".
func TestListenOptionAlerts(t *testing.T) {
	dir, err := os.MkdirTemp("", "gp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	port := freePort(t)
	conf := fmt.Sprintf(`events {}
http {
  access_log off;
  server {
    listen unix:%s deferred;
    listen 127.0.0.1:%d so_keepalive=1y;
    return 200 ok;
  }
}
`, sock, port)
	cfg, _, err := parser.LoadBytes(filepath.Join(dir, "nginx.conf"), []byte(conf), parser.Options{Prefix: dir})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.ErrorLevel)
	s, err := New(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer s.Close()
	want := []string{
		"setsockopt(TCP_DEFER_ACCEPT, 1) for unix:" + sock + " failed, ignored",
		fmt.Sprintf("setsockopt(TCP_KEEPIDLE, %d) for 127.0.0.1:%d failed, ignored", 365*24*3600, port),
	}
	deadline := time.Now().Add(5 * time.Second)
	for logs.Len() < len(want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Message)
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(got, "\n"), w) {
			t.Errorf("logged %q, want %q", got, w)
		}
	}
	// Both sockets serve despite the refused options.
	for _, a := range s.Addrs() {
		nc, err := net.DialTimeout(a.Network(), a.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(nc)
		nc.Close()
		if !strings.HasPrefix(string(b), "HTTP/1.1 200") {
			t.Errorf("%s: response %q", a, b)
		}
	}
}

// TestSameSocket: a reload keeps a socket only if its listen parameters
// ask for the same options; server-level parameters do not count.
func TestSameSocket(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"http2", "http2 default_server", true},
		{"so_keepalive=on", "so_keepalive=on", true},
		{"so_keepalive=on", "so_keepalive=off", false},
		{"so_keepalive=1m::", "so_keepalive=60::", true},
		{"", "so_keepalive=off", false},
		{"rcvbuf=8k", "rcvbuf=16k", false},
		{"backlog=10", "backlog=20", false},
		{"", "deferred", false},
		{"fastopen=1", "fastopen=2", false},
		{"", "reuseport", false},
	} {
		a := routeListener(t, "127.0.0.1:30051", tc.a)
		b := routeListener(t, "127.0.0.1:30051", tc.b)
		if got := sameSocket(a, b); got != tc.same {
			t.Errorf("%q -> %q: sameSocket = %v", tc.a, tc.b, got)
		}
	}
}
