// Command benchtool holds the pieces of `make bench` that h2load does not do
// itself:
//
//	benchtool ports -base 20000 -n 6        print N free loopback ports at or
//	                                        above BASE, below the ephemeral range
//	benchtool ping -addr A -n 4             N unary calls; exit 0 if all succeed
//	benchtool msg -o FILE                   write one framed gRPC SimpleRequest
//	                                        for h2load -d
//	benchtool rate -addr A -rps 5000 ...    unary calls at a fixed, evenly
//	                                        spaced rate; latency percentiles
//	benchtool stream -addr A -dir down ...  1 MiB messages server->client
//	                                        (down) or client->server (up); MB/s
//	benchtool idle -addr A -pid P -n 1000   open N idle HTTP/2 connections and
//	                                        print the growth of P's RSS per one
//	benchtool handshake -addr A -c 8 -t 5s  new full TLS handshakes per second
//
// Every command is bounded in time and prints one line of numbers for
// examples/bench/bench.sh to read; errors go to stderr with exit status 1.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
)

// commands maps each subcommand to its implementation.
var commands = map[string]func(args []string) error{
	"ports":     ports,
	"ping":      ping,
	"msg":       msg,
	"rate":      rate,
	"stream":    stream,
	"idle":      idle,
	"handshake": handshakes,
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool ports|ping|msg|rate|stream|idle|handshake [flags]")
		os.Exit(2)
	}
	f, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "benchtool: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// ports prints n loopback TCP ports at or above base that can be listened on
// now. Ports inside the kernel's ephemeral range are refused: any outgoing
// connection (of this bench or anything else) may hold one of them at the
// moment a server wants to bind it.
func ports(args []string) error {
	fs := flag.NewFlagSet("ports", flag.ExitOnError)
	base := fs.Int("base", 20000, "first port to try")
	n := fs.Int("n", 1, "how many ports")
	_ = fs.Parse(args)
	lo, hi := ephemeralRange()
	got, err := freePorts(*base, *n, lo, hi)
	if err != nil {
		return err
	}
	fmt.Println(strings.Trim(fmt.Sprint(got), "[]"))
	return nil
}

// freePorts returns n ports from base upwards that 127.0.0.1 can listen on,
// skipping busy ones and failing rather than entering [lo, hi].
func freePorts(base, n, lo, hi int) ([]int, error) {
	var got []int
	for p := base; len(got) < n; p++ {
		if p > 65535 || (p >= lo && p <= hi) {
			return nil, fmt.Errorf("found %d of %d free ports from %d before reaching port %d (the ephemeral range is %d-%d); set BENCH_PORT lower", len(got), n, base, p, lo, hi)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		got = append(got, p)
	}
	return got, nil
}

// ephemeralRange reads Linux's range of local ports for outgoing connections,
// falling back to its default.
func ephemeralRange() (lo, hi int) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		l, err1 := strconv.Atoi(f[0])
		h, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil {
			return l, h
		}
	}
	return lo, hi
}

// ping makes n unary calls through addr, so that the bench knows a proxy is
// not only listening but reaches its backends.
func ping(args []string) error {
	fs := flag.NewFlagSet("ping", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	n := fs.Int("n", 4, "calls")
	timeout := fs.Duration("timeout", time.Second, "bound on all calls together")
	_ = fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cc, err := dial(*addr, 0)
	if err != nil {
		return err
	}
	defer cc.Close()
	tc := testgrpc.NewTestServiceClient(cc)
	for range *n {
		if _, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true)); err != nil {
			return err
		}
	}
	return nil
}

// dial opens a plaintext gRPC client connection that accepts messages of
// maxMsg bytes (0: grpc-go's default).
func dial(addr string, maxMsg int) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, errors.New("-addr is required")
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if maxMsg > 0 {
		opts = append(opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg)))
	}
	return grpc.NewClient("passthrough:///"+addr, opts...)
}

// msg writes one gRPC-framed SimpleRequest asking for a response of -resp
// bytes and carrying -size bytes of payload.
func msg(args []string) error {
	fs := flag.NewFlagSet("msg", flag.ExitOnError)
	size := fs.Int("size", 0, "request payload bytes")
	resp := fs.Int("resp", 0, "response payload bytes")
	out := fs.String("o", "", "output file")
	_ = fs.Parse(args)
	b, err := grpcFrame(&testpb.SimpleRequest{
		ResponseSize: int32(*resp),
		Payload:      &testpb.Payload{Body: make([]byte, *size)},
	})
	if err != nil {
		return err
	}
	return os.WriteFile(*out, b, 0o644)
}

// grpcFrame marshals m behind gRPC's 5-byte length prefix (uncompressed).
func grpcFrame(m proto.Message) ([]byte, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	frame := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(b)))
	return append(frame, b...), nil
}
