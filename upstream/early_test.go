package upstream

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/proxy/nettest"
	"golang.org/x/net/http2"
)

// lateSettingsBackend is a server that, like nginx-tests' fake gRPC
// backend, sends its SETTINGS only once it has read the first HEADERS,
// then answers every stream with a trailers-only response. It counts the
// connections it accepted.
func lateSettingsBackend(t *testing.T) (addr string, accepts func() int) {
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			go func() {
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, len(h2.ClientPreface))
				if _, err := io.ReadFull(nc, buf); err != nil {
					return
				}
				fr := http2.NewFramer(nc, nc)
				settings := false
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					hf, ok := f.(*http2.HeadersFrame)
					if !ok {
						continue
					}
					if !settings {
						settings = true
						fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
					}
					// :status 200 (static index 8), grpc-status 0.
					block := []byte{0x88, 0x40, 11, 'g', 'r', 'p', 'c', '-', 's', 't', 'a', 't', 'u', 's', 1, '0'}
					fr.WriteHeaders(http2.HeadersFrameParam{StreamID: hf.StreamID, BlockFragment: block,
						EndStream: true, EndHeaders: true})
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestPoolServerSettingsAfterHeaders: a new connection opens its first
// stream before the server's SETTINGS (which this server sends only after
// it), and calls that arrived meanwhile wait for those SETTINGS on that
// connection rather than dialing more.
func TestPoolServerSettingsAfterHeaders(t *testing.T) {
	addr, accepts := lateSettingsBackend(t)
	p := testPool(addr)
	defer p.Close()
	const calls = 8
	r := &recorder{done: make(chan error, calls)}
	var wg sync.WaitGroup
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := open(t, p, r); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < calls; i++ {
		select {
		case err := <-r.done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d responses", i, calls)
		}
	}
	if n := accepts(); n != 1 {
		t.Fatalf("%d connections for %d calls, want 1", n, calls)
	}
}
