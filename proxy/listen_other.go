//go:build !linux

package proxy

import (
	"fmt"
	"runtime"
	"syscall"
)

// sockoptNumbers maps the socket options that listen parameters set to
// their level and number. Outside Linux only the portable ones are known;
// the others are refused with an alert, as nginx does where the OS lacks
// them.
var sockoptNumbers = map[string][2]int{
	"SO_REUSEPORT": {syscall.SOL_SOCKET, syscall.SO_REUSEPORT},
	"SO_RCVBUF":    {syscall.SOL_SOCKET, syscall.SO_RCVBUF},
	"SO_SNDBUF":    {syscall.SOL_SOCKET, syscall.SO_SNDBUF},
	"SO_KEEPALIVE": {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
	"IPV6_V6ONLY":  {syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY},
}

// setsockopt sets the option called name on fd to value.
func setsockopt(fd int, name string, value int) error {
	n, ok := sockoptNumbers[name]
	if !ok {
		return fmt.Errorf("%s is not supported by gproxy on %s", name, runtime.GOOS)
	}
	return syscall.SetsockoptInt(fd, n[0], n[1], value)
}
