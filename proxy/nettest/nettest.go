// Package nettest gives tests loopback sockets on ports below the kernel's
// ephemeral range (32768-60999 on Linux), so a listener of a test never
// collides with the source port of some outgoing connection, as a port
// from ":0" can.
//
// A port handed out is claimed for the life of the test process, in the
// process and across processes (a byte-range lock on a shared file), so
// the packages `go test ./...` runs at once never draw the same port:
// Port's port is closed again before the server under test binds it, and
// without the claim another package's Listen could take it meanwhile.
package nettest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
		p, ok := claim()
		if !ok {
			continue
		}
		ln, err := net.Listen(network, join(host, p))
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
		p, ok := claim()
		if !ok {
			continue
		}
		pc, err := net.ListenPacket(network, join(host, p))
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

// claims holds the ports this process has claimed and the lock file
// whose byte at offset PORT another test process holds locked while it
// owns PORT.
var claims struct {
	sync.Mutex
	taken map[int]bool
	lock  *os.File // never closed: closing would drop every lock
	err   error
}

// claim draws a port no test process has claimed and claims it for this
// one. It reports false when the drawn port was taken; a lock file that
// cannot be opened leaves only the in-process claim.
func claim() (int, bool) {
	claims.Lock()
	defer claims.Unlock()
	if claims.taken == nil {
		claims.taken = map[int]bool{}
		claims.lock, claims.err = os.OpenFile(filepath.Join(os.TempDir(), "gproxy-nettest.lock"), os.O_RDWR|os.O_CREATE, 0o666)
	}
	p := Low + rand.IntN(High-Low)
	if claims.taken[p] {
		return 0, false
	}
	if claims.err == nil {
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: int64(p), Len: 1}
		if err := syscall.FcntlFlock(claims.lock.Fd(), syscall.F_SETLK, &lk); err != nil {
			return 0, false // another test process owns p
		}
	}
	claims.taken[p] = true
	return p, true
}

func join(host string, port int) string {
	return net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port))
}
