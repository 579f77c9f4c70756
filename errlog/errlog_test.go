package errlog

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

// TestErrno checks nginx's way of printing a system error, through the
// wrappers Go puts around an errno.
func TestErrno(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{syscall.ECONNREFUSED, "(111: Connection refused)"},
		{&os.SyscallError{Syscall: "connect", Err: syscall.ETIMEDOUT}, "(110: Connection timed out)"},
		{fmt.Errorf("open: %w", &os.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}), "(2: No such file or directory)"},
		{errors.New("no errno"), "(no errno)"},
	} {
		if got := Errno(c.err); got != c.want {
			t.Errorf("Errno(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	if f := Connection(7); f.Key != ConnectionKey || f.Integer != 7 {
		t.Errorf("Connection(7) = %+v", f)
	}
}
