// Package syslogtest is a syslog server on loopback for tests: the error
// log's and the access logs' tests read what gproxy sends through it.
package syslogtest

import (
	"github.com/gproxy/gproxy/proxy/nettest"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Listener receives datagrams on a UDP socket on 127.0.0.1 and on a unix
// datagram socket; both close when the test ends.
type Listener struct {
	UDP, Unix net.PacketConn
	Sock      string // the unix socket's path
}

// New starts a Listener.
func New(t testing.TB) *Listener {
	t.Helper()
	u, err := nettest.ListenPacket("udp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	// Short: sun_path holds 107 bytes, and t.TempDir can be long.
	dir, err := os.MkdirTemp("", "sl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	x, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return &Listener{UDP: u, Unix: x, Sock: sock}
}

// Read returns n datagrams from pc, waiting at most 5 seconds.
func Read(t testing.TB, pc net.PacketConn, n int) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 64<<10)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(out) < n {
		m, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%d of %d datagrams: %v (got %q)", len(out), n, err, out)
		}
		out = append(out, string(buf[:m]))
	}
	return out
}
