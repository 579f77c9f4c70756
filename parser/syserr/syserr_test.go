package syserr

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"
)

func TestSpelling(t *testing.T) {
	_, err := os.Open("/nonexistent/gproxy")
	for _, c := range []struct{ got, want string }{
		{Text(syscall.ECONNREFUSED), "Connection refused"},
		{Open("/nonexistent/gproxy", err), `open() "/nonexistent/gproxy" failed (2: No such file or directory)`},
		{Open("/x", fs.ErrNotExist), `open() "/x" failed (2: No such file or directory)`},
		{Open("/x", fmt.Errorf("odd")), `open() "/x" failed (odd)`},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if p, ok := Paren(fmt.Errorf("dial: %w", syscall.ECONNREFUSED)); !ok || p != "(111: Connection refused)" {
		t.Errorf("Paren = %q %v", p, ok)
	}
	if _, ok := Paren(fmt.Errorf("no errno")); ok {
		t.Error("Paren found an errno in a plain error")
	}
}
