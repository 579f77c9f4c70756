//go:build !linux

package h2

import "errors"

// Idle connections are parked only on Linux (park.go); elsewhere an idle
// connection's reader waits on its goroutine.

type parker struct{}

var errWouldBlock = errors.New("h2: no input")

func (c *Conn) parkInit()                   {}
func (c *Conn) tryRead([]byte) (int, error) { return 0, errWouldBlock }
func (c *Conn) park() bool                  { return false }
func (c *Conn) unparked(bool) bool          { return false }
