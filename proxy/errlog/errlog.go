// Package errlog holds what every part of gproxy needs to write nginx's
// error log through a *zap.Logger: the levels zap lacks (crit, alert,
// emerg), the one field the error log knows (the client connection
// number, printed "*N"), and nginx's way of printing a system error
// ("(111: Connection refused)").
//
// The contract: a line's whole text is its message, worded as nginx words
// it; the only field is Connection. cmd/gproxy's encoder prints
//
//	2026/11/30 12:00:00 [error] 1234#0: *17 MESSAGE
//
// and never prints fields as JSON.
package errlog

import (
	"github.com/gproxy/gproxy/parser/syserr"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// nginx's levels above error. zap panics or exits at its own DPanic,
// Panic and Fatal levels, so these lie above them, where zap treats them
// as plain levels: log with logger.Log(errlog.Alert, msg).
const (
	Crit  = zapcore.FatalLevel + 1
	Alert = zapcore.FatalLevel + 2
	Emerg = zapcore.FatalLevel + 3
)

// ConnectionKey is the name of the connection number field.
const ConnectionKey = "connection"

// Connection is the field naming the client connection a line is about;
// the encoder prints it as "*id " before the message, as nginx does.
func Connection(id uint64) zap.Field { return zap.Uint64(ConnectionKey, id) }

// Errno formats a system error as nginx does after a failed call:
// "(2: No such file or directory)". An error without an errno is given in
// parentheses as it is.
func Errno(err error) string {
	if p, ok := syserr.Paren(err); ok {
		return p
	}
	return "(" + err.Error() + ")"
}
