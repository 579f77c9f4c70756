//go:build !linux

package h2

import "net"

// sockUnsent: only Linux tells (unsent_linux.go).
func sockUnsent(net.Conn) (int, bool) { return 0, false }
