package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gproxy/gproxy/proxy/nettest"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// startStatusServer is an HTTP/2 server on 127.0.0.1 that answers every
// request at its END_STREAM with a bare `:status code` response.
func startStatusServer(t *testing.T, code string) string {
	return startRawServer(t, func(w *rawWriter, id uint32) bool {
		return w.headers(id, true, ":status", code) == nil
	})
}

// rawWriter writes frames of a raw HTTP/2 server.
type rawWriter struct {
	fr  *http2.Framer
	hb  bytes.Buffer
	enc *hpack.Encoder
}

// headers writes a HEADERS frame of the name, value pairs kv.
func (w *rawWriter) headers(id uint32, end bool, kv ...string) error {
	w.hb.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		w.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: w.hb.Bytes(), EndHeaders: true, EndStream: end})
}

// startRawServer is an HTTP/2 server on 127.0.0.1 that calls answer at
// the END_STREAM of each request; when answer returns false the server
// closes the connection cleanly (FIN, then it drains what comes).
func startRawServer(t *testing.T, answer func(w *rawWriter, id uint32) bool) string {
	return serveRaw(t, func(w *rawWriter, f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				return answer(w, f.StreamID)
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				return answer(w, f.StreamID)
			}
		}
		return true
	})
}

// serveRaw is an HTTP/2 server on 127.0.0.1 that does the handshake
// (SETTINGS and their ACKs) and hands every other frame to onFrame; when
// onFrame returns false it closes the connection cleanly: half-close and
// drain, so the proxy reads an orderly end (FIN), never a reset for
// unread bytes.
func serveRaw(t *testing.T, onFrame func(w *rawWriter, f http2.Frame) bool) string {
	t.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(nc)
				if _, err := io.ReadFull(br, make([]byte, len(http2.ClientPreface))); err != nil {
					return
				}
				w := &rawWriter{fr: http2.NewFramer(nc, br)}
				w.enc = hpack.NewEncoder(&w.hb)
				if w.fr.WriteSettings() != nil {
					return
				}
				for {
					f, err := w.fr.ReadFrame()
					if err != nil {
						return
					}
					if sf, ok := f.(*http2.SettingsFrame); ok {
						if !sf.IsAck() {
							w.fr.WriteSettingsAck()
						}
						continue
					}
					if !onFrame(w, f) {
						nc.(*net.TCPConn).CloseWrite()
						io.Copy(io.Discard, br)
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// TestNextUpstream: how each grpc_next_upstream case treats a failed
// first attempt, with nginx's rule for POST (every gRPC call): after the
// request was sent, only with non_idempotent; before (or provably
// unprocessed), without it.
func TestNextUpstream(t *testing.T) {
	unavailable := func(context.Context) error { return status.Error(codes.Unavailable, "shedding load") }
	slow := func(ctx context.Context) error {
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
		}
		return nil
	}
	for _, tc := range []struct {
		name      string
		first     func(t *testing.T) string // the failing peer's address
		next      string                    // grpc_next_upstream
		extra     string                    // more location directives
		want      codes.Code                // the call's outcome
		wantRetry bool                      // whether the live peer served it
	}{
		{"trailers-only UNAVAILABLE, http_503 listed", func(t *testing.T) string { return startFuncBackend(t, unavailable).addr },
			"error timeout http_503", "", codes.OK, true},
		{"trailers-only UNAVAILABLE, http_503 not listed", func(t *testing.T) string { return startFuncBackend(t, unavailable).addr },
			"error timeout", "", codes.Unavailable, false},
		{"read timeout, sent: not without non_idempotent", func(t *testing.T) string { return startFuncBackend(t, slow).addr },
			"error timeout", "grpc_read_timeout 200ms;", codes.DeadlineExceeded, false},
		{"read timeout with non_idempotent", func(t *testing.T) string { return startFuncBackend(t, slow).addr },
			"error timeout non_idempotent", "grpc_read_timeout 200ms;", codes.OK, true},
		{"closed after the request: not without non_idempotent", startCloser,
			"error timeout", "", codes.Unavailable, false},
		{"closed after the request with non_idempotent", startCloser,
			"error timeout non_idempotent", "", codes.OK, true},
		{"HTTP 503 without non_idempotent: passed on", func(t *testing.T) string { return startStatusServer(t, "503") },
			"error http_503", "", codes.Unavailable, false},
		{"HTTP 503 with non_idempotent", func(t *testing.T) string { return startStatusServer(t, "503") },
			"error http_503 non_idempotent", "", codes.OK, true},
		{"HTTP 404 with http_404 non_idempotent", func(t *testing.T) string { return startStatusServer(t, "404") },
			"http_404 non_idempotent", "", codes.OK, true},
		{"off", startCloser, "off", "", codes.Unavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := tc.first(t)
			live := startFuncBackend(t, nil)
			port := freePort(t)
			// The failing peer is first, and picked first: round robin
			// starts at the heavier peer.
			startProxyLogged(t, siteConf(port, "", "grpc_next_upstream "+tc.next+"; "+tc.extra, bad+" weight=2", live.addr))
			cc := dial(t, fmt.Sprintf("127.0.0.1:%d", port))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testpb.Empty{})
			if status.Code(err) != tc.want {
				t.Fatalf("call: %v, want %v", err, tc.want)
			}
			if got := live.count() == 1; got != tc.wantRetry {
				t.Fatalf("live peer served %d calls, want retried=%v", live.count(), tc.wantRetry)
			}
		})
	}
}
