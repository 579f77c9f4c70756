package e2e

import (
	"fmt"
	"github.com/gproxy/gproxy/proxy/nettest"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// TestStoppedBackendRetried: of two backends one is stopped (its port
// refuses connections). With nginx's defaults (max_fails=1, fail_timeout,
// grpc_next_upstream error timeout) every one of 100 calls over one client
// connection succeeds, served by the live backend.
func TestStoppedBackendRetried(t *testing.T) {
	live := startBackend(t, "live")
	dead := &backend{name: "dead", addr: freeAddr(t)}
	addr, _ := grpcSite(t, []*backend{dead, live})
	tc := client(t, addr)
	ctx := testCtx(t, 30*time.Second)
	for i := range 100 {
		r, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if id := r.GetServerId(); id != live.name {
			t.Fatalf("call %d served by %q", i, id)
		}
	}
}

// TestDeadBackendProbed: the dead backend accepts connections and closes
// them at once, so its connection attempts can be counted. Within each
// fail_timeout (1s here) it gets at most max_fails=1 attempt; after
// fail_timeout it is probed again; every call succeeds on the live one.
func TestDeadBackendProbed(t *testing.T) {
	live := startBackend(t, "live")
	dead := startClosingListener(t)
	const failTimeout = time.Second
	params := "max_fails=1 fail_timeout=1s"
	addr, _ := grpcSite(t, []*backend{{name: "dead", addr: dead.addr()}, live}, params, params)
	tc := client(t, addr)
	ctx := testCtx(t, 30*time.Second)

	call := func(i int) {
		t.Helper()
		r, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true})
		if err != nil {
			if differs(t, "nginx", "a connection closed after the request was sent is not retried for POST (non_idempotent)") {
				return
			}
			t.Fatalf("call %d: %v", i, err)
		}
		if id := r.GetServerId(); id != live.name {
			t.Fatalf("call %d served by %q", i, id)
		}
	}
	for i := range 100 {
		call(i)
	}
	first := dead.accepts()
	if len(first) < 1 {
		t.Fatal("the dead backend was never tried")
	}
	for i := 1; i < len(first); i++ {
		if gap := first[i].Sub(first[i-1]); gap < failTimeout-10*time.Millisecond {
			t.Errorf("attempts %d and %d on the dead backend %v apart, want >= fail_timeout %v", i-1, i, gap, failTimeout)
		}
	}
	t.Logf("100 calls: %d attempt(s) on the dead backend", len(first))

	// After fail_timeout the dead backend is probed once more (nginx
	// counts in whole seconds, so its probe may come up to a second
	// later), and only once: the failed probe keeps it out again.
	time.Sleep(time.Until(first[len(first)-1].Add(failTimeout + 100*time.Millisecond)))
	for i := 0; len(dead.accepts()) == len(first) && i < 50; i++ {
		call(100 + i)
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 10 {
		call(200 + i)
	}
	if n := len(dead.accepts()); n != len(first)+1 {
		t.Errorf("after fail_timeout: %d attempts on the dead backend, want %d (one probe)", n, len(first)+1)
	}
}

// TestNextUpstreamOff: with grpc_next_upstream off the call that meets the
// stopped backend fails with UNAVAILABLE, naming the upstream and the
// cause; the backend is then left out for fail_timeout.
func TestNextUpstreamOff(t *testing.T) {
	live := startBackend(t, "live")
	dead := &backend{name: "dead", addr: freeAddr(t)}
	addr := freeAddr(t)
	startProxy(t, upstreamBlock("backends", []*backend{dead, live})+fmt.Sprintf(`
server {
    listen %s http2;
    location / {
        grpc_next_upstream off;
        grpc_pass grpc://backends;
    }
}
`, addr))
	tc := client(t, addr)
	ctx := testCtx(t, 30*time.Second)
	_, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("first call (to the stopped backend): %v, want Unavailable", err)
	}
	want := `upstream "backends": connect to ` + dead.addr + ` failed: connection refused`
	if !strings.Contains(status.Convert(err).Message(), want) && !differs(t, "nginx", "answers 502 with an HTML page") {
		t.Errorf("message %q, want %q", status.Convert(err).Message(), want)
	}
	for i := range 10 {
		r, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true})
		if err != nil || r.GetServerId() != live.name {
			t.Fatalf("call %d: %v (served by %q), want the live backend", i+1, err, r.GetServerId())
		}
	}
}

// TestAllBackendsStopped: with every backend stopped the call fails with
// UNAVAILABLE after trying each, and the message names the last cause;
// the next call finds no live upstreams.
func TestAllBackendsStopped(t *testing.T) {
	d1 := &backend{name: "d1", addr: freeAddr(t)}
	d2 := &backend{name: "d2", addr: freeAddr(t)}
	addr, _ := grpcSite(t, []*backend{d1, d2})
	tc := client(t, addr)
	ctx := testCtx(t, 30*time.Second)
	_, err := tc.EmptyCall(ctx, &testpb.Empty{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("first call: %v, want Unavailable", err)
	}
	want := `upstream "backends": connect to ` + d2.addr + ` failed: connection refused`
	if !strings.Contains(status.Convert(err).Message(), want) && !differs(t, "nginx", "answers 502 with an HTML page") {
		t.Errorf("message %q, want %q", status.Convert(err).Message(), want)
	}
	_, err = tc.EmptyCall(ctx, &testpb.Empty{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("second call: %v, want Unavailable", err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "no live upstreams") && !differs(t, "nginx", "answers 502 with an HTML page") {
		t.Errorf("second call: message %q, want no live upstreams", msg)
	}
}

// closingListener accepts connections on 127.0.0.1 and closes them at
// once, recording when: a backend process whose server is broken.
type closingListener struct {
	ln net.Listener
	mu sync.Mutex
	at []time.Time
}

func startClosingListener(t *testing.T) *closingListener {
	t.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l := &closingListener{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.at = append(l.at, time.Now())
			l.mu.Unlock()
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return l
}

func (l *closingListener) addr() string { return l.ln.Addr().String() }

func (l *closingListener) accepts() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.at...)
}
