package syslog

import (
	"errors"
	"github.com/gproxy/gproxy/proxy/nettest"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

// TestAppendMessage checks the datagram bytes: PRI, the time with a
// space-padded day, the lower-case host name (or none), the tag (possibly
// empty), the message as is.
func TestAppendMessage(t *testing.T) {
	at := time.Date(2026, time.November, 5, 8, 7, 6, 0, time.Local)
	host := hostname()
	tests := []struct {
		cfg  config.Syslog
		sev  int
		want string
	}{
		{config.Syslog{Facility: 23, Tag: "nginx"}, Info, "<190>Nov  5 08:07:06 " + host + " nginx: m\x01 \"x\""},
		{config.Syslog{Facility: 16, Tag: "foo", NoHostname: true}, Warn, "<132>Nov  5 08:07:06 foo: m\x01 \"x\""},
		{config.Syslog{Facility: 0, Tag: ""}, Emerg, "<0>Nov  5 08:07:06 " + host + " : m\x01 \"x\""},
		{config.Syslog{Facility: 16, NoHostname: true}, Error, "<131>Nov  5 08:07:06 : m\x01 \"x\""},
	}
	for _, tt := range tests {
		if got := string(AppendMessage([]byte("keep"), tt.cfg, tt.sev, at, []byte("m\x01 \"x\""))); got != "keep"+tt.want {
			t.Errorf("%+v:\n got %q\nwant %q", tt.cfg, got, "keep"+tt.want)
		}
	}
	if host != strings.ToLower(host) {
		t.Errorf("host name %q is not lower case", host)
	}
}

// listen opens a datagram socket on loopback (network "udp" or "unixgram")
// and returns the Sink configuration that sends to it.
func listen(t *testing.T, network, addr string) (net.PacketConn, config.Syslog) {
	t.Helper()
	pc, err := nettest.ListenPacket(network, strings.TrimSuffix(addr, ":0"))
	if err != nil {
		t.Skipf("%s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc, config.Syslog{Server: addr, Network: network, Addr: pc.LocalAddr().String(), Facility: 3, Severity: Info, Tag: "t1"}
}

// receive reads one datagram within 5 seconds.
func receive(t *testing.T, pc net.PacketConn) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

func TestSendUDP(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		pc, cfg := listen(t, "udp", addr)
		s := New(cfg, nil)
		if err := s.Send(Warn, []byte("hello world")); err != nil {
			t.Fatal(err)
		}
		want := regexp.MustCompile(`^<28>[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d ` + regexp.QuoteMeta(hostname()) + ` t1: hello world$`)
		if got := receive(t, pc); !want.MatchString(got) {
			t.Errorf("%s: %q does not match %s", addr, got, want)
		}
		// One Send, one datagram, even for a long message.
		long := strings.Repeat("x", 8000)
		if err := s.Send(Debug, []byte(long)); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, pc); !strings.HasSuffix(got, " t1: "+long) || !strings.HasPrefix(got, "<31>") {
			t.Errorf("%s: long message arrived as %d bytes %.40q", addr, len(got), got)
		}
		s.Close()
	}
}

// TestUnixConnectsLazily: a socket that does not exist yet is no error
// until a message is due, and the Sink connects again after a failure,
// so a syslog daemon restarting loses only the messages sent meanwhile.
func TestUnixConnectsLazily(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.sock")
	var reports atomic.Int32
	var lastErr atomic.Value
	s := New(config.Syslog{Server: "unix:" + path, Network: "unixgram", Addr: path, Facility: 1, Severity: Info, Tag: "t"},
		func(err error) { reports.Add(1); lastErr.Store(err) })
	defer s.Close()
	for range 50 {
		if err := s.Send(Info, []byte("lost")); err == nil {
			t.Fatal("send to a missing socket succeeded")
		}
	}
	if n := reports.Load(); n != 1 {
		t.Errorf("%d reports for 50 failures within a second, want 1", n)
	}
	if err, _ := lastErr.Load().(error); err == nil || !strings.Contains(err.Error(), `syslog server "unix:`+path+`"`) {
		t.Errorf("report: %v", err)
	}

	pc, err := net.ListenPacket("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(Error, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, pc); !strings.HasPrefix(got, "<11>") || !strings.HasSuffix(got, " t: first") {
		t.Errorf("got %q", got)
	}

	// The daemon restarts: the old socket goes, a new one appears.
	pc.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	pc, err = net.ListenPacket("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// The first send after the restart fails on the old socket at most
	// once; the next one reaches the new socket.
	sent := false
	for i := 0; i < 3 && !sent; i++ {
		sent = s.Send(Error, []byte("again")) == nil
	}
	if !sent {
		t.Fatal("no reconnection after the receiver came back")
	}
	if got := receive(t, pc); !strings.HasSuffix(got, " t: again") {
		t.Errorf("got %q", got)
	}
}

// TestSendNeverWaits fills a receiver that never reads: sends fail with
// EAGAIN instead of blocking, and the Sink works again once the receiver
// drains its queue.
func TestSendNeverWaits(t *testing.T) {
	pc, cfg := listen(t, "unixgram", filepath.Join(t.TempDir(), "full.sock"))
	s := New(cfg, nil)
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 5000 && err == nil; i++ {
			err = s.Send(Info, []byte(strings.Repeat("y", 512)))
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("filling the queue ended with %v, want EAGAIN", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Send blocked on a full socket")
	}
	receive(t, pc) // room for one more
	if err := s.Send(Info, []byte("after")); err != nil {
		t.Errorf("send after the queue drained: %v", err)
	}
}

// TestClose: messages after Close are dropped quietly.
func TestClose(t *testing.T) {
	_, cfg := listen(t, "udp", "127.0.0.1:0")
	var reports atomic.Int32
	s := New(cfg, func(error) { reports.Add(1) })
	if err := s.Send(Info, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Send(Info, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if reports.Load() != 0 {
		t.Error("failure reported after Close")
	}
}

// TestConcurrent sends from many goroutines while the Sink closes and
// reconnects under them (run with -race); every datagram that arrives is
// one whole message.
func TestConcurrent(t *testing.T) {
	pc, cfg := listen(t, "udp", "127.0.0.1:0")
	s := New(cfg, nil)
	defer s.Close()
	var got sync.WaitGroup
	got.Go(func() {
		buf := make([]byte, 4096)
		for {
			_ = pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if !regexp.MustCompile(`^<30>.* t1: w\d+ m\d+$`).Match(buf[:n]) {
				t.Errorf("torn datagram %q", buf[:n])
			}
		}
	})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				_ = s.Send(Info, []byte("w"+strconv.Itoa(w)+" m"+strconv.Itoa(i)))
				if i%50 == 0 {
					if c := s.cur.Load(); c != nil {
						s.disconnect(c) // as a failed send would
					}
				}
			}
		})
	}
	wg.Wait()
	got.Wait()
}

// BenchmarkSend measures one access-log-sized message to a UDP socket on
// loopback, the receiver draining it.
func BenchmarkSend(b *testing.B) {
	pc, err := nettest.ListenPacket("udp", "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := pc.(*net.UDPConn).Read(buf); err != nil { // Read: no address to allocate
				return
			}
		}
	}()
	s := New(config.Syslog{Network: "udp", Addr: pc.LocalAddr().String(), Facility: 23, Tag: "nginx"}, nil)
	defer s.Close()
	msg := []byte(`127.0.0.1 - - [25/Nov/2026:08:07:58 +0000] "POST /helloworld.Greeter/SayHello HTTP/2.0" 200 17 "-" "grpc-go/1.85.0"`)
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Send(Info, msg)
	}
}
