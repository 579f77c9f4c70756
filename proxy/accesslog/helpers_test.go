package accesslog

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http2/hpack"
)

// load reads an nginx.conf http block body through the real parser, with
// {DIR} replaced by a fresh directory, and builds the route table and the
// Set. The Set is closed when the test ends.
func load(t testing.TB, httpBody string) (*config.HTTP, *Set, string) {
	t.Helper()
	h, tbl, dir := parse(t, httpBody)
	s, err := New(h, tbl, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return h, s, dir
}

// parse is load without New.
func parse(t testing.TB, httpBody string) (*config.HTTP, *route.Table, string) {
	t.Helper()
	dir := t.TempDir()
	conf := "events {}\nhttp {\n" + strings.ReplaceAll(httpBody, "{DIR}", dir) + "\n}\n"
	lookup := func(context.Context, string) ([]string, error) { return []string{"127.0.0.1"}, nil }
	cfg, _, err := parser.LoadBytes(filepath.Join(dir, "nginx.conf"), []byte(conf), parser.Options{Prefix: dir, LookupHost: lookup})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	tbl, err := route.New(cfg.HTTP)
	if err != nil {
		t.Fatalf("route: %v", err)
	}
	return cfg.HTTP, tbl, dir
}

// grpcRequest is a finished unary gRPC call as the engine fills it.
func grpcRequest(s *config.Server) *route.Request {
	start := time.Date(2026, 11, 25, 8, 35, 47, 0, time.UTC)
	return &route.Request{
		Method: "POST", Scheme: "http", Authority: "api.test:30051", Path: "/helloworld.Greeter/SayHello",
		Headers: []hpack.HeaderField{
			{Name: "content-type", Value: "application/grpc"},
			{Name: "te", Value: "trailers"},
			{Name: "user-agent", Value: "grpc-go/1.85.0"},
		},
		RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000},
		LocalAddr:  &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 30051},
		Server:     s,
		Proto:      "HTTP/2.0",
		Start:      start,
		End:        start.Add(1234 * time.Microsecond),
		Status:     200, BytesSent: 120, BodyBytesSent: 17, RequestLength: 95,
		Upstreams:  []route.UpstreamAttempt{{Addr: "127.0.0.1:50051", Status: 200, ResponseTime: time.Millisecond, ConnectTime: 0}},
		GRPCStatus: "0",
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
