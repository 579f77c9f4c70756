package testservice

import (
	"context"
	"github.com/gproxy/gproxy/proxy/nettest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

// TestNamesAndCounts checks, over a real socket, that replies carry the
// backend's name and that calls are counted by kind.
func TestNamesAndCounts(t *testing.T) {
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	svc := New("b7")
	svc.Register(srv)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	tc := testgrpc.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var hdr metadata.MD
	r, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if r.GetServerId() != "b7" || len(hdr.Get(BackendHeader)) != 1 || hdr.Get(BackendHeader)[0] != "b7" {
		t.Errorf("server id %q, header %v; want b7 in both", r.GetServerId(), hdr)
	}
	st, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := st.Header(); err != nil || len(h.Get(BackendHeader)) != 1 {
		t.Errorf("stream header %v, %v; want %s", h, err, BackendHeader)
	}
	for {
		if _, err := st.Recv(); err != nil {
			break
		}
	}
	if svc.Unary() != 1 || svc.Streams() != 1 {
		t.Errorf("counts: %d unary, %d streams; want 1, 1", svc.Unary(), svc.Streams())
	}
}
