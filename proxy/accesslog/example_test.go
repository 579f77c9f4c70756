package accesslog_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/proxy/accesslog"
	"github.com/gproxy/gproxy/proxy/route"
)

// Example shows the engine's side: build a Set beside the route table,
// resolve a Logger per location once, log each finished stream, close the
// Set when its configuration is retired.
func Example() {
	dir, _ := os.MkdirTemp("", "accesslog")
	defer os.RemoveAll(dir)
	conf := `events {}
http {
    access_log off;
    log_format grpc '$remote_addr "$request" $status $grpc_status $upstream_addr';
    server {
        listen 127.0.0.1:30051 http2;
        location / {
            access_log ` + filepath.Join(dir, "grpc.log") + ` grpc;
            grpc_pass grpc://127.0.0.1:50051;
        }
    }
}`
	lookup := func(context.Context, string) ([]string, error) { return []string{"127.0.0.1"}, nil }
	cfg, _, err := parser.LoadBytes(filepath.Join(dir, "nginx.conf"), []byte(conf), parser.Options{LookupHost: lookup})
	if err != nil {
		panic(err)
	}
	tbl, err := route.New(cfg.HTTP)
	if err != nil {
		panic(err)
	}
	logs, err := accesslog.New(cfg.HTTP, tbl, nil)
	if err != nil {
		panic(err)
	}
	loc := cfg.HTTP.Servers[0].Locations[0]
	logger := logs.For(&loc.Settings) // once, when building the running configuration

	// As a stream ends:
	logger.Log(&route.Request{
		Method: "POST", Path: "/helloworld.Greeter/SayHello", Proto: "HTTP/2.0",
		RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000},
		Start:      time.Now(), End: time.Now(),
		Status: 200, GRPCStatus: "0",
		Upstreams: []route.UpstreamAttempt{{Addr: "127.0.0.1:50051", Status: 200}},
	})

	logs.Close() // flushes
	b, _ := os.ReadFile(filepath.Join(dir, "grpc.log"))
	fmt.Print(string(b))
	// Output:
	// 127.0.0.1 "POST /helloworld.Greeter/SayHello HTTP/2.0" 200 0 127.0.0.1:50051
}
