package tlsconf

import (
	"fmt"
	"strconv"

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
