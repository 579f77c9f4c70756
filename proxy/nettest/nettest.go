// Package nettest gives tests loopback sockets on ports below the kernel's
// ephemeral range (32768-60999 on Linux), so a listener of a test never
// collides with the source port of some outgoing connection, as a port
// from ":0" can.
package nettest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Ports are drawn from [Low, High): above the well-known ports, below the
// ephemeral range.
const (
	Low  = 20000
	High = 32768
)

// attempts bounds the random draws before giving up.
const attempts = 200

// Listen listens on network ("tcp", "tcp4", "tcp6") at host ("127.0.0.1",
// "::1", "[::1]") on a random free port in [Low, High).
func Listen(network, host string) (net.Listener, error) {
	var last error
	for range attempts {
		ln, err := net.Listen(network, join(host, draw()))
		if err == nil {
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
		last = err
	}
	return nil, fmt.Errorf("nettest: no free port in [%d, %d) on %s: %w", Low, High, host, last)
}

// ListenPacket is Listen for "udp", "udp4" and "udp6".
func ListenPacket(network, host string) (net.PacketConn, error) {
	var last error
	for range attempts {
		pc, err := net.ListenPacket(network, join(host, draw()))
		if err == nil {
			return pc, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
		last = err
	}
	return nil, fmt.Errorf("nettest: no free port in [%d, %d) on %s: %w", Low, High, host, last)
}

// Port returns a TCP port of host that was free a moment ago, for a
// configuration that a server under test will listen on. It fails tb when
// none is found.
func Port(tb testing.TB, host string) int {
	tb.Helper()
	ln, err := Listen("tcp", host)
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Addr returns "127.0.0.1:PORT" with a port that was free a moment ago.
func Addr(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(tb, "127.0.0.1")))
}

func draw() int { return Low + rand.IntN(High-Low) }

func join(host string, port int) string {
	return net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port))
}
