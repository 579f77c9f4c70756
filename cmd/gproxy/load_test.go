package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/gproxy/gproxy/examples/testservice"
	"github.com/gproxy/gproxy/proxy/nettest"
)

// grpcBackend is one in-process TestService on 127.0.0.1.
type grpcBackend struct {
	addr string
	svc  *testservice.Service
	srv  *grpc.Server
}

// startGRPCBackend starts a TestService; it stops when the test ends.
func startGRPCBackend(t *testing.T, name string) *grpcBackend {
	t.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	b := &grpcBackend{addr: ln.Addr().String(), svc: testservice.New(name), srv: grpc.NewServer()}
	b.svc.Register(b.srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = b.srv.Serve(ln) }()
	t.Cleanup(func() { b.srv.Stop(); <-done })
	return b
}

// load drives a bounded load of unary and streaming calls through gproxy
// until stopped, counting successes and failures (with the first errors).
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       chan struct{}
	wg         sync.WaitGroup
	conns      []*grpc.ClientConn
}

// startLoad starts workers unary callers and streamers streaming callers
// on each of conns client connections to addr.
func startLoad(t *testing.T, addr string, conns, workers, streamers int) *load {
	t.Helper()
	l := &load{stop: make(chan struct{})}
	for i := 0; i < conns; i++ {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		l.conns = append(l.conns, cc)
		client := testgrpc.NewTestServiceClient(cc)
		for w := 0; w < workers; w++ {
			l.wg.Add(1)
			go l.unary(client)
		}
		for w := 0; w < streamers; w++ {
			l.wg.Add(1)
			go l.streaming(client)
		}
	}
	return l
}

func (l *load) record(err error) {
	if err == nil {
		l.ok.Add(1)
		return
	}
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.errs) < 5 {
		l.errs = append(l.errs, err.Error())
	}
	l.mu.Unlock()
}

func (l *load) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *load) unary(c testgrpc.TestServiceClient) {
	defer l.wg.Done()
	for !l.stopped() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 64, Payload: &testpb.Payload{Body: make([]byte, 64)}})
		cancel()
		l.record(err)
		time.Sleep(time.Millisecond) // bounded: about 1,000 calls/s per worker at most
	}
}

// streaming runs FullDuplexCall streams of five round trips each.
func (l *load) streaming(c testgrpc.TestServiceClient) {
	defer l.wg.Done()
	for !l.stopped() {
		l.record(oneStream(c))
		time.Sleep(2 * time.Millisecond)
	}
}

func oneStream(c testgrpc.TestServiceClient) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.FullDuplexCall(ctx)
	if err != nil {
		return err
	}
	for i := 0; i < 5; i++ {
		req := &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 32}}}
		if err := st.Send(req); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
		if _, err := st.Recv(); err != nil {
			return fmt.Errorf("recv %d: %w", i, err)
		}
		time.Sleep(time.Millisecond)
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	if _, err := st.Recv(); err != io.EOF {
		return fmt.Errorf("end of stream: %v", err)
	}
	return nil
}

// finish stops the load and closes its connections; it returns the
// counts.
func (l *load) finish() (ok, failed int64, errs []string) {
	close(l.stop)
	l.wg.Wait()
	for _, cc := range l.conns {
		cc.Close()
	}
	return l.ok.Load(), l.failed.Load(), l.errs
}

// openFDs counts the open descriptors of a process.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
