// Command benchtool holds the small pieces of `make bench` that h2load does
// not do itself:
//
//	benchtool msg -size 0 -o FILE        write one length-prefixed gRPC message
//	                                     (a SimpleRequest) for h2load -d
//	benchtool idle -addr A -n 1000       open N idle HTTP/2 connections, print
//	                                     "ready" and hold them until stdin closes
//	benchtool stream -addr A -c 4 -d 8s  server-streaming calls of 1 MiB
//	                                     messages; prints MB/s
//	benchtool pct -p 50,99 FILE          percentiles of h2load --log-file
//	                                     latencies, in milliseconds
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool msg|idle|stream|pct [flags]")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{"msg": msg, "idle": idle, "stream": stream, "pct": pct}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "benchtool: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// msg writes one gRPC-framed SimpleRequest asking for a response of -resp
// bytes and carrying -size bytes of payload.
func msg(args []string) error {
	fs := flag.NewFlagSet("msg", flag.ExitOnError)
	size := fs.Int("size", 0, "request payload bytes")
	resp := fs.Int("resp", 0, "response payload bytes")
	out := fs.String("o", "", "output file")
	_ = fs.Parse(args)
	b, err := proto.Marshal(&testpb.SimpleRequest{
		ResponseSize: int32(*resp),
		Payload:      &testpb.Payload{Body: make([]byte, *size)},
	})
	if err != nil {
		return err
	}
	frame := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(b)))
	return os.WriteFile(*out, append(frame, b...), 0o644)
}

// idle opens n HTTP/2 connections that finish the handshake (preface and
// SETTINGS both ways) and then stay silent, so the proxy's memory per idle
// connection can be read from outside.
func idle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	addr := fs.String("addr", "", "proxy address")
	n := fs.Int("n", 1000, "connections")
	_ = fs.Parse(args)
	conns := make([]net.Conn, 0, *n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range *n {
		c, err := net.DialTimeout("tcp", *addr, 5*time.Second)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		if err := handshake(c); err != nil {
			return err
		}
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin) // hold until the script closes stdin
	return nil
}

func handshake(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return err
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return err
	}
	// Read until the server's SETTINGS arrived and it acknowledged ours.
	var gotSettings, gotAck bool
	for !gotSettings || !gotAck {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		if s, ok := f.(*http2.SettingsFrame); ok {
			if s.IsAck() {
				gotAck = true
			} else {
				gotSettings = true
				if err := fr.WriteSettingsAck(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// stream runs c connections, each with one server-streaming call after
// another, each call 16 responses of -size bytes, for -d; prints MB/s.
func stream(args []string) error {
	fs := flag.NewFlagSet("stream", flag.ExitOnError)
	addr := fs.String("addr", "", "proxy address")
	conns := fs.Int("c", 4, "connections, one stream each")
	size := fs.Int("size", 1<<20, "message size")
	d := fs.Duration("d", 8*time.Second, "duration")
	_ = fs.Parse(args)

	params := make([]*testpb.ResponseParameters, 16)
	for i := range params {
		params[i] = &testpb.ResponseParameters{Size: int32(*size)}
	}
	req := &testpb.StreamingOutputCallRequest{ResponseParameters: params}
	ctx, cancel := context.WithTimeout(context.Background(), *d)
	defer cancel()
	var bytes, msgs atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range *conns {
		cc, err := grpc.NewClient("passthrough:///"+*addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(*size+1024)))
		if err != nil {
			return err
		}
		defer cc.Close()
		tc := testgrpc.NewTestServiceClient(cc)
		wg.Go(func() {
			for ctx.Err() == nil {
				st, err := tc.StreamingOutputCall(ctx, req)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				for {
					r, err := st.Recv()
					if err != nil {
						if err != io.EOF && ctx.Err() == nil {
							firstErr.CompareAndSwap(nil, err)
						}
						break
					}
					bytes.Add(int64(len(r.GetPayload().GetBody())))
					msgs.Add(1)
				}
			}
		})
	}
	start := time.Now()
	wg.Wait()
	el := time.Since(start).Seconds()
	if err := firstErr.Load(); err != nil && msgs.Load() == 0 {
		return fmt.Errorf("%v", err)
	}
	fmt.Printf("%.1f MB/s %d msgs\n", float64(bytes.Load())/1e6/el, msgs.Load())
	return nil
}

// pct prints percentiles of the latency column (3rd, microseconds) of an
// h2load --log-file, in milliseconds, and the share of non-200 statuses.
func pct(args []string) error {
	fs := flag.NewFlagSet("pct", flag.ExitOnError)
	ps := fs.String("p", "50,99", "percentiles")
	_ = fs.Parse(args)
	var lat []float64
	bad := 0
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			if fields[1] != "200" {
				bad++
			}
			us, err := strconv.ParseFloat(fields[2], 64)
			if err == nil {
				lat = append(lat, us/1000)
			}
		}
		f.Close()
	}
	if len(lat) == 0 {
		return fmt.Errorf("no latencies")
	}
	sort.Float64s(lat)
	var out []string
	for _, p := range strings.Split(*ps, ",") {
		q, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return err
		}
		i := int(q / 100 * float64(len(lat)-1))
		out = append(out, fmt.Sprintf("%.2f", lat[i]))
	}
	fmt.Println(strings.Join(out, " "), len(lat), bad)
	return nil
}
