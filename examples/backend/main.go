// Command backend is the demo's gRPC backend: grpc-go's interop TestService
// that names itself in every reply (SimpleResponse.ServerId and the
// x-backend response header) and counts the calls it served.
//
//	go run ./examples/backend -addr 127.0.0.1:50051 -name b1
//
// It prints its counts every -report interval when they changed, and once
// more when it stops on SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/gproxy/gproxy/examples/testservice"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "address to listen on")
	name := flag.String("name", "", "server id to report (default: the address)")
	report := flag.Duration("report", 0, "print counts this often when they change (0: only at exit)")
	flag.Parse()
	if *name == "" {
		*name = *addr
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("backend: %v", err)
	}
	svc := testservice.New(*name)
	srv := grpc.NewServer(
		grpc.MaxRecvMsgSize(math.MaxInt32),
		grpc.MaxSendMsgSize(math.MaxInt32),
	)
	svc.Register(srv)
	fmt.Fprintf(os.Stderr, "backend %s listening on %s\n", *name, ln.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		srv.Stop()
	}()
	if *report > 0 {
		go func() {
			var last int64 = -1
			for range time.Tick(*report) {
				if n := svc.Unary() + svc.Streams(); n != last {
					last = n
					printCounts(svc)
				}
			}
		}()
	}
	if err := srv.Serve(ln); err != nil {
		log.Fatalf("backend: %v", err)
	}
	printCounts(svc)
}

func printCounts(svc *testservice.Service) {
	fmt.Fprintf(os.Stderr, "backend %s served %d unary, %d streaming calls\n", svc.Name(), svc.Unary(), svc.Streams())
}
