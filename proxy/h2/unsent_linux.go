//go:build linux

package h2

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// sockUnsent reports how many bytes written to nc's socket the kernel has
// not sent yet (SIOCOUTQNSD): output the peer's closed receive window
// holds back. ok is false where the socket cannot tell.
func sockUnsent(nc net.Conn) (n int, ok bool) {
	if t, isTLS := nc.(interface{ NetConn() net.Conn }); isTLS {
		nc = t.NetConn()
	}
	sc, isSock := nc.(syscall.Conn)
	if !isSock {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQNSD) }); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}
