// Package syserr spells system errors the way nginx prints them after a
// failed call: the errno and glibc's strerror(3) text in parentheses,
// "(111: Connection refused)". Every part of gproxy that writes nginx's
// messages (the configuration loader, TLS loading, the error log, health
// checks) uses it, so the spelling is the same everywhere.
package syserr

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// Text is strerror(3)'s text for e: Go's text with glibc's capital first
// letter ("Connection refused").
func Text(e syscall.Errno) string {
	s := e.Error()
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[size:]
}

// Paren is "(ERRNO: Text)" for an error that carries an errno, and false
// for one that does not.
func Paren(err error) (string, bool) {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return "", false
	}
	return "(" + strconv.Itoa(int(errno)) + ": " + Text(errno) + ")", true
}

// Open is nginx's message for a file it cannot open:
// `open() "/x" failed (2: No such file or directory)`.
func Open(path string, err error) string {
	if p, ok := Paren(err); ok {
		return fmt.Sprintf(`open() "%s" failed %s`, path, p)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Sprintf(`open() "%s" failed (2: No such file or directory)`, path)
	}
	return fmt.Sprintf(`open() "%s" failed (%v)`, path, err)
}

// Suffix is " (ERRNO: Text)", as nginx appends a system error to a
// message ("connect() failed (111: Connection refused)"), or "" for an
// error that carries no errno.
func Suffix(err error) string {
	if p, ok := Paren(err); ok {
		return " " + p
	}
	return ""
}
