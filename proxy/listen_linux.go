//go:build linux

package proxy

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// sockoptNumbers maps the socket options that listen parameters set to
// their level and number on Linux.
var sockoptNumbers = map[string][2]int{
	"SO_REUSEPORT":     {unix.SOL_SOCKET, unix.SO_REUSEPORT},
	"SO_RCVBUF":        {unix.SOL_SOCKET, unix.SO_RCVBUF},
	"SO_SNDBUF":        {unix.SOL_SOCKET, unix.SO_SNDBUF},
	"SO_KEEPALIVE":     {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
	"IPV6_V6ONLY":      {unix.IPPROTO_IPV6, unix.IPV6_V6ONLY},
	"TCP_KEEPIDLE":     {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
	"TCP_KEEPINTVL":    {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
	"TCP_KEEPCNT":      {unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
	"TCP_FASTOPEN":     {unix.IPPROTO_TCP, unix.TCP_FASTOPEN},
	"TCP_DEFER_ACCEPT": {unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT},
}

// setsockopt sets the option called name on fd to value.
func setsockopt(fd int, name string, value int) error {
	n, ok := sockoptNumbers[name]
	if !ok {
		return fmt.Errorf("%s is unknown", name)
	}
	return unix.SetsockoptInt(fd, n[0], n[1], value)
}
