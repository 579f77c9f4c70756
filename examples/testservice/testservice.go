// Package testservice is the gRPC backend used by gproxy's demo, benchmark
// and end-to-end tests: grpc-go's interop TestService, which already covers
// every RPC shape (unary, client/server/bidi streaming, status echo, metadata
// echo, sleeping server), plus the one thing a load-balancing demo needs on
// top of it: every reply says which backend produced it, and the backend
// counts what it served.
package testservice

import (
	"context"
	"os"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

// BackendHeader is the response header (initial metadata) that carries the
// serving backend's name on every streaming call. Unary calls carry it too,
// and also in SimpleResponse.ServerId.
const BackendHeader = "x-backend"

// Service is a TestService that names itself in every reply and counts calls.
// It is safe for concurrent use.
type Service struct {
	testgrpc.TestServiceServer // interop behaviour for everything not overridden

	name     string
	hostname string
	unary    atomic.Int64
	streams  atomic.Int64
}

// New returns a Service that reports name as its server id.
func New(name string) *Service {
	h, _ := os.Hostname()
	return &Service{TestServiceServer: interop.NewTestServer(), name: name, hostname: h}
}

// Register registers s, and the interop UnimplementedService is left
// unregistered on purpose so that calls to it get UNIMPLEMENTED.
func (s *Service) Register(g *grpc.Server) { testgrpc.RegisterTestServiceServer(g, s) }

// Name is the server id given to New.
func (s *Service) Name() string { return s.name }

// Unary is how many UnaryCall and EmptyCall RPCs this backend has served.
func (s *Service) Unary() int64 { return s.unary.Load() }

// Streams is how many streaming RPCs this backend has served.
func (s *Service) Streams() int64 { return s.streams.Load() }

func (s *Service) tag(ctx context.Context) {
	// A header is sent once per call; the interop handlers may add their
	// own echo header later, which grpc-go merges before the first send.
	_ = grpc.SetHeader(ctx, metadata.Pairs(BackendHeader, s.name))
}

// EmptyCall counts and tags the call, then answers like the interop server.
func (s *Service) EmptyCall(ctx context.Context, in *testpb.Empty) (*testpb.Empty, error) {
	s.unary.Add(1)
	s.tag(ctx)
	return s.TestServiceServer.EmptyCall(ctx, in)
}

// UnaryCall answers like the interop server and always fills ServerId and
// Hostname, so a client can count per backend without asking for it.
func (s *Service) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.unary.Add(1)
	resp, err := s.TestServiceServer.UnaryCall(ctx, in)
	if err != nil {
		// No header of our own here: grpc-go answers an error with no
		// header metadata as a trailers-only response, which the tests
		// need to see crossing the proxy.
		return nil, err
	}
	s.tag(ctx)
	resp.ServerId = s.name
	resp.Hostname = s.hostname
	return resp, nil
}

// StreamingOutputCall sends the backend header at once (so a client knows
// where its stream landed before the first message) and then streams.
func (s *Service) StreamingOutputCall(in *testpb.StreamingOutputCallRequest, st testgrpc.TestService_StreamingOutputCallServer) error {
	s.streams.Add(1)
	if err := st.SendHeader(metadata.Pairs(BackendHeader, s.name)); err != nil {
		return err
	}
	return s.TestServiceServer.StreamingOutputCall(in, st)
}

// StreamingInputCall counts the call and runs the interop handler.
func (s *Service) StreamingInputCall(st testgrpc.TestService_StreamingInputCallServer) error {
	s.streams.Add(1)
	s.tag(st.Context())
	return s.TestServiceServer.StreamingInputCall(st)
}

// FullDuplexCall counts the call and runs the interop handler.
func (s *Service) FullDuplexCall(st testgrpc.TestService_FullDuplexCallServer) error {
	s.streams.Add(1)
	s.tag(st.Context())
	return s.TestServiceServer.FullDuplexCall(st)
}

// HalfDuplexCall counts the call and runs the interop handler.
func (s *Service) HalfDuplexCall(st testgrpc.TestService_HalfDuplexCallServer) error {
	s.streams.Add(1)
	s.tag(st.Context())
	return s.TestServiceServer.HalfDuplexCall(st)
}
