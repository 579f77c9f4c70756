package tlsconf

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"syscall"

	"github.com/gproxy/gproxy/parser/config"
)

// Error is a configuration that cannot be loaded: Msg in nginx's words,
// Pos the directive it comes from (zero when unknown).
type Error struct {
	Msg string
	Pos config.Pos
}

// Error returns "MSG in FILE:LINE", the shape of nginx's diagnostics
// without the level.
func (e *Error) Error() string {
	switch {
	case e.Pos.File == "":
		return e.Msg
	case e.Pos.Line == 0:
		return e.Msg + " in " + e.Pos.File
	}
	return e.Msg + " in " + e.Pos.File + ":" + strconv.Itoa(e.Pos.Line)
}

func errAt(p config.Pos, format string, a ...any) error {
	return &Error{Msg: fmt.Sprintf(format, a...), Pos: p}
}

// openError is nginx's text for a file that cannot be opened:
// `open() "/x" failed (2: No such file or directory)`.
func openError(path string, err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return fmt.Sprintf(`open() "%s" failed (%d: %s)`, path, int(errno), errnoText(errno))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Sprintf(`open() "%s" failed (2: No such file or directory)`, path)
	}
	return fmt.Sprintf(`open() "%s" failed (%v)`, path, err)
}

// errnoText is strerror(3)'s text, which starts with a capital letter
// where Go's does not.
func errnoText(e syscall.Errno) string {
	s := e.Error()
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}
