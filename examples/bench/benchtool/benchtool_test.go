package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"github.com/gproxy/gproxy/proxy/nettest"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"

	"github.com/gproxy/gproxy/examples/testservice"
	"github.com/gproxy/gproxy/parser/tlsconf/tlstest"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// backend starts the bench's gRPC backend on a loopback port for one test.
func backend(t *testing.T) string {
	t.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testservice.New("b1").Register(srv)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func TestFreePortsSkipsBusyPorts(t *testing.T) {
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	if busy+3 > 65535 {
		t.Skip("busy port too high to search above it")
	}
	// A made-up ephemeral range far away, so that it does not interfere.
	got, err := freePorts(busy, 2, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || slices.Contains(got, busy) || got[0] <= busy {
		t.Fatalf("freePorts(%d, 2) = %v, want two free ports above the busy one", busy, got)
	}
}

func TestFreePortsRefusesTheEphemeralRange(t *testing.T) {
	_, err := freePorts(40000, 3, 40001, 50000)
	if err == nil || !strings.Contains(err.Error(), "ephemeral range is 40001-50000") {
		t.Fatalf("err = %v, want a refusal naming the ephemeral range", err)
	}
}

func TestPingSucceedsAndFails(t *testing.T) {
	addr := backend(t)
	if err := ping([]string{"-addr", addr, "-n", "3", "-timeout", "5s"}); err != nil {
		t.Fatalf("ping to a live backend: %v", err)
	}
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	if err := ping([]string{"-addr", dead, "-timeout", "300ms"}); err == nil {
		t.Fatal("ping to a closed port succeeded")
	}
}

func TestRateMeasuresEveryCallAfterWarmUp(t *testing.T) {
	addr := backend(t)
	body, err := grpcFrame(&testpb.SimpleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	const rps = 2000
	res, err := runRate(addr, "/grpc.testing.TestService/UnaryCall", body, rps, 3, 100*time.Millisecond, 400*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// 0.4 s at 2,000/s, each call k at k/rps: exactly 800 measured calls.
	if len(res.lat)+res.errors != 800 || res.errors != 0 {
		t.Fatalf("%d latencies, %d errors (first: %v); want 800 and 0", len(res.lat), res.errors, res.firstErr)
	}
	if !slices.IsSorted(res.lat) || res.lat[0] <= 0 {
		t.Fatalf("latencies not sorted or not positive: first %v", res.lat[0])
	}
	if res.achieved < rps/2 || res.achieved > rps*11/10 {
		t.Fatalf("achieved %.0f calls/s, want about %d", res.achieved, rps)
	}
}

func TestRateCountsGRPCErrors(t *testing.T) {
	addr := backend(t)
	// UnimplementedCall is left unregistered: every call ends with
	// grpc-status 12 in a trailers-only response.
	_, err := runRate(addr, "/grpc.testing.UnimplementedService/UnimplementedCall", []byte{0, 0, 0, 0, 0},
		500, 2, 0, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), `grpc-status "12"`) {
		t.Fatalf("err = %v, want no call succeeded with grpc-status 12", err)
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	d := make([]time.Duration, 1000)
	for i := range d {
		d[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{50, 500}, {99, 990}, {99.9, 999}, {100, 1000}, {0.01, 1}} {
		if got := percentile(d, tc.q); got != tc.want {
			t.Errorf("percentile(1..1000, %v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestStreamBothDirections(t *testing.T) {
	addr := backend(t)
	for dir, call := range streamCalls {
		res, err := runStream(addr, call, 2, 64<<10, 4, 150*time.Millisecond)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if res.calls == 0 || res.msgs != 4*res.calls || res.mbps <= 0 {
			t.Fatalf("%s: %+v, want whole calls of 4 messages and a positive rate", dir, res)
		}
	}
}

func TestIdleHandshakeAndRSS(t *testing.T) {
	addr := backend(t)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := handshake(c); err != nil {
		t.Fatalf("handshake with grpc-go: %v", err)
	}
	if kib, err := rssKiB(os.Getpid()); err != nil || kib <= 0 {
		t.Fatalf("rssKiB(self) = %d, %v", kib, err)
	}
}

// TestRateRespectsTheStreamLimit runs rate against a bare HTTP/2 server that
// allows one stream at a time and answers it after 100 ms: the calls due
// meanwhile must fail as "saturated" instead of being sent and refused.
func TestRateRespectsTheStreamLimit(t *testing.T) {
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, preface); err != nil {
			return
		}
		fr := http2.NewFramer(c, c)
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1})
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if d, ok := f.(*http2.DataFrame); ok && d.StreamEnded() {
				time.Sleep(100 * time.Millisecond)
				var hb bytes.Buffer
				enc := hpack.NewEncoder(&hb)
				_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				_ = enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: "0"})
				_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: d.StreamID, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: true})
			}
		}
	}()
	res, err := runRate(ln.Addr().String(), "/x", []byte{0, 0, 0, 0, 0}, 100, 1, 0, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.lat) != 1 || res.errors != 4 || !strings.Contains(fmt.Sprint(res.firstErr), "saturated") {
		t.Fatalf("%d latencies, %d errors, first %v; want 1, 4 and saturation", len(res.lat), res.errors, res.firstErr)
	}
	if res.lat[0] < 100*time.Millisecond {
		t.Fatalf("latency %v, want at least the server's 100 ms", res.lat[0])
	}
}

// tlsServer serves full TLS 1.3 handshakes (ECDSA P-256) on a loopback port
// and closes each connection after its handshake.
func tlsServer(t *testing.T) string {
	t.Helper()
	cert := tlstest.New(t, nil, tlstest.Options{})
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cfg := &tls.Config{Certificates: []tls.Certificate{cert.TLS()}, NextProtos: []string{"h2"}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = tls.Server(c, cfg).Handshake()
			}()
		}
	}()
	return ln.Addr().String()
}

func TestHandshakesCountsEveryHandshakeAndNoFailure(t *testing.T) {
	res := runHandshakes(tlsServer(t), 4, 300*time.Millisecond, false)
	if res.done == 0 || res.failed != 0 || res.firstErr != nil {
		t.Fatalf("%+v, want handshakes and no failure", res)
	}
	if res.perSecond <= 0 || res.clientUS <= 0 {
		t.Fatalf("%+v, want a positive rate and client CPU", res)
	}
}

func TestHandshakesCountsRefusedConnections(t *testing.T) {
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	res := runHandshakes(addr, 2, 100*time.Millisecond, false)
	if res.done != 0 || res.failed == 0 || !strings.Contains(fmt.Sprint(res.firstErr), "refused") {
		t.Fatalf("%+v, want only refused connections", res)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("run took %v, want about 100ms", time.Since(start))
	}
}
