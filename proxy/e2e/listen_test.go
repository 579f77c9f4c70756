package e2e

import (
	"fmt"
	"github.com/gproxy/gproxy/proxy/nettest"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/gproxy/gproxy/examples/testservice"
)

// TestListenAndPassForms: every listen form the issue names (ADDR:PORT,
// [::1]:PORT, unix:PATH) and every grpc_pass form (grpc://UPSTREAM,
// grpc://HOST:PORT, bare UPSTREAM, bare HOST:PORT), with a backend on a
// unix socket too, each reaching the backend it names.
func TestListenAndPassForms(t *testing.T) {
	ln6, err := nettest.Listen("tcp", "[::1]")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	v6 := ln6.Addr().String()
	ln6.Close()

	dir, err := os.MkdirTemp("", "gpl") // short: sun_path holds 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	front := filepath.Join(dir, "front.sock")
	back := filepath.Join(dir, "back.sock")

	tcpA, tcpB := startBackend(t, "tcp-a"), startBackend(t, "tcp-b")
	unixB := startUnixBackend(t, "unix-b", back)

	a1, a2 := freeAddr(t), freeAddr(t)
	startProxy(t, fmt.Sprintf(`
upstream named { server %[1]s; }
upstream sock { server unix:%[2]s; }
server {
    listen unix:%[3]s http2;
    location / { grpc_pass grpc://named; }
}
server {
    listen %[4]s http2;
    location / { grpc_pass grpc://%[5]s; }
}
server {
    listen %[6]s http2;
    location / { grpc_pass sock; }
}
server {
    listen %[7]s http2;
    location / { grpc_pass %[5]s; }
}
`, tcpA.addr, back, front, v6, tcpB.addr, a1, a2))

	for _, c := range []struct{ target, form, want string }{
		{"unix://" + front, "listen unix:, grpc_pass grpc://UPSTREAM", "tcp-a"},
		{"passthrough:///" + v6, "listen [::1]:PORT, grpc_pass grpc://HOST:PORT", "tcp-b"},
		{"passthrough:///" + a1, "grpc_pass UPSTREAM (server unix:PATH)", unixB.Name()},
		{"passthrough:///" + a2, "grpc_pass HOST:PORT", "tcp-b"},
	} {
		cc, err := grpc.NewClient(c.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		r, err := testgrpc.NewTestServiceClient(cc).UnaryCall(testCtx(t, 5*time.Second), &testpb.SimpleRequest{FillServerId: true})
		if err != nil {
			t.Errorf("%s: %v", c.form, err)
			continue
		}
		if r.ServerId != c.want {
			t.Errorf("%s: served by %q, want %q", c.form, r.ServerId, c.want)
		}
	}
}

// startUnixBackend serves a TestService on a unix socket until the test ends.
func startUnixBackend(t *testing.T, name, path string) *testservice.Service {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	svc := testservice.New(name)
	srv := grpc.NewServer()
	svc.Register(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return svc
}
