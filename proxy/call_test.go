package proxy

import (
	"bufio"
	"context"
	"fmt"
	"github.com/gproxy/gproxy/proxy/nettest"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// refuser is an HTTP/2 backend on 127.0.0.1 that refuses each request at
// its first DATA frame, provably unprocessed: with RST_STREAM
// REFUSED_STREAM, or with GOAWAY naming a last stream below it.
type refuser struct {
	ln     net.Listener
	goAway bool
	atEnd  bool // refuse at the request's END_STREAM instead
	mu     sync.Mutex
	bodies []int // request DATA bytes received per stream
}

func startRefuser(t *testing.T, goAway, atEnd bool) *refuser {
	t.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	r := &refuser{ln: ln, goAway: goAway, atEnd: atEnd}
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(nc, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				r.serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return r
}

func (r *refuser) serve(nc net.Conn) {
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(nc)
	if _, err := io.ReadFull(br, make([]byte, len(http2.ClientPreface))); err != nil {
		return
	}
	fr := http2.NewFramer(nc, br)
	if fr.WriteSettings() != nil {
		return
	}
	body := map[uint32]int{}
	refused := map[uint32]bool{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		var id uint32
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
			continue
		case *http2.PingFrame:
			if !f.IsAck() {
				fr.WritePing(true, f.Data)
			}
			continue
		case *http2.HeadersFrame:
			id = f.StreamID
			body[id] += 0
			if !f.StreamEnded() {
				continue
			}
		case *http2.DataFrame:
			id = f.StreamID
			body[id] += len(f.Data())
			if r.atEnd && !f.StreamEnded() {
				continue
			}
		default:
			continue
		}
		if refused[id] {
			continue
		}
		refused[id] = true
		r.mu.Lock()
		r.bodies = append(r.bodies, body[id])
		r.mu.Unlock()
		if r.goAway {
			last := uint32(0)
			if id > 2 {
				last = id - 2
			}
			fr.WriteGoAway(last, http2.ErrCodeNo, nil)
		} else {
			fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
		}
	}
}

func (r *refuser) streams() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.bodies...)
}

// TestRefusedStreamRetried: the first peer refuses a client-streaming
// call after its first message (REFUSED_STREAM, or GOAWAY below its id);
// gproxy replays what it sent on the other peer and carries on, and that
// peer counts every byte. The refusing peer is then left out
// (max_fails=1).
func TestRefusedStreamRetried(t *testing.T) {
	for _, goAway := range []bool{false, true} {
		t.Run(fmt.Sprintf("goaway=%v", goAway), func(t *testing.T) {
			ref := startRefuser(t, goAway, false)
			b := startBackend(t)
			port := freePort(t)
			startProxy(t, articleConf(port, ref.ln.Addr().String(), b.addr))
			tc := testgrpc.NewTestServiceClient(dial(t, fmt.Sprintf("127.0.0.1:%d", port)))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			// The first message opens the stream and is refused; the rest
			// (beyond the replay buffer and the stream window) flow to the
			// other peer after the replay, so credit must be exact.
			st, err := tc.StreamingInputCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Send(&testpb.StreamingInputCallRequest{Payload: payload(1000)}); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(5 * time.Second); len(ref.streams()) == 0 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			for range 50 {
				if err := st.Send(&testpb.StreamingInputCallRequest{Payload: payload(4000)}); err != nil {
					t.Fatal(err)
				}
			}
			res, err := st.CloseAndRecv()
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if got := res.GetAggregatedPayloadSize(); got != 201000 {
				t.Fatalf("backend received %d payload bytes, want 201000", got)
			}
			refused := ref.streams()
			if len(refused) != 1 || refused[0] < 1000 {
				t.Fatalf("refusing peer saw streams with %v request bytes, want one with the first message", refused)
			}
			for i := range 6 {
				if _, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{Payload: payload(100)}); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			if n := len(ref.streams()); n != 1 {
				t.Fatalf("refusing peer got %d streams, want 1 (left out for fail_timeout)", n)
			}
			if n := b.calls.Load(); n != 7 {
				t.Fatalf("live backend served %d calls, want 7", n)
			}
		})
	}
}

// TestReplayCap: a request stream longer than the replay buffer is not
// retried when refused; the client gets UNAVAILABLE naming the refusal.
func TestReplayCap(t *testing.T) {
	ref := startRefuser(t, false, true)
	b := startBackend(t)
	port := freePort(t)
	startProxy(t, articleConf(port, ref.ln.Addr().String(), b.addr))
	tc := testgrpc.NewTestServiceClient(dial(t, fmt.Sprintf("127.0.0.1:%d", port)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := tc.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := st.Send(&testpb.StreamingInputCallRequest{Payload: payload(maxReplay / 2)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = st.CloseAndRecv()
	if err == nil {
		t.Fatal("a refused request beyond the replay buffer succeeded")
	}
	t.Logf("got %v", err)
	if b.calls.Load() != 0 {
		t.Fatal("the request went to the other backend without its first bytes")
	}
}

// TestResponseLookahead follows the window a backend gets for one call
// (respAllowance + lookahead) through the cases of call.go's Response
// flow control: a client that never opens its window, a client with a
// wide window (framed bytes go straight back as credit, so the backend is
// never held to one lookahead per client WINDOW_UPDATE), and a client
// with a small window that reads slowly (what was sent and not taken
// stays within respAllowance).
func TestResponseLookahead(t *testing.T) {
	t.Run("zero window", func(t *testing.T) {
		var a upAttempt
		if g := a.grantLook(0); g != 0 {
			t.Fatalf("granted %d for a zero window", g)
		}
	})
	t.Run("wide window", func(t *testing.T) {
		var a upAttempt
		wc := int64(4 << 20)
		if g := a.grantLook(wc); g != respLookahead {
			t.Fatalf("granted %d at open, want the whole lookahead %d", g, respLookahead)
		}
		for range 100 { // 100 frames of 16 KiB framed as they come
			wc -= 16 << 10
			if r := a.useLook(16<<10, wc); r != 16<<10 {
				t.Fatalf("credit %d for 16 KiB framed with %d left of the client's window, want all of it", r, wc)
			}
		}
	})
	t.Run("small window, slow reader", func(t *testing.T) {
		var a upAttempt
		wc := int64(64 << 10)
		sent := respAllowance + a.grantLook(wc) // the backend sends all it may
		framed := min(sent, wc)
		wc -= framed
		if r := a.useLook(framed, wc); r != 0 {
			t.Fatalf("credit %d while the client's window is used up", r)
		}
		if q := sent - framed; q != respAllowance {
			t.Fatalf("%d bytes wait for the client, want respAllowance %d", q, respAllowance)
		}
		// The client takes 32 KiB: passed on, and the waiting bytes framed.
		wc += 32 << 10
		sent += a.grantLook(32 << 10)
		framed2 := min(sent-framed, wc)
		wc -= framed2
		if r := a.useLook(framed2, wc); r != 0 {
			t.Fatalf("credit %d: more than the client's window would reach the backend", r)
		}
		if q := sent - framed - framed2; q > respAllowance {
			t.Fatalf("%d bytes wait for the client, more than respAllowance %d", q, respAllowance)
		}
	})
}
