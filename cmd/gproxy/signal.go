package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/gproxy/gproxy/proxy/errlog"
)

// signalNumbers are the signals -s sends, by the names of the signals map.
var signalNumbers = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM,
	"QUIT": syscall.SIGQUIT,
	"USR1": syscall.SIGUSR1,
	"HUP":  syscall.SIGHUP,
}

// sendSignal is -s: like nginx, it reads the configuration to learn the pid
// file, reads the pid from it and signals that process.
func sendSignal(p paths, o options, stderr io.Writer) int {
	cfg, warnings, err := p.load()
	for i := range warnings {
		fmt.Fprintf(stderr, "gproxy: %s\n", warnings[i].Error())
	}
	if err != nil {
		fmt.Fprintf(stderr, "gproxy: %s\n", diagnostic(err))
		return 1
	}
	name := p.pidFile(cfg)
	if name == "" {
		fmt.Fprintf(stderr, "gproxy: [error] the configuration names no pid file\n")
		return 1
	}
	pid, err := readPID(name)
	if err != nil {
		fmt.Fprintf(stderr, "gproxy: [error] %s\n", err)
		return 1
	}
	sig := signalNumbers[signals[o.signal]]
	if err := syscall.Kill(pid, sig); err != nil {
		fmt.Fprintf(stderr, "gproxy: [alert] kill(%d, %d) failed %s\n", pid, int(sig), errnoText(err))
		return 1
	}
	return 0
}

// readPID reads a pid file as nginx does: one decimal number, a trailing
// newline allowed; errors are worded like nginx's.
func readPID(name string) (int, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return 0, fmt.Errorf("open() \"%s\" failed %s", name, errnoText(err))
	}
	text := strings.TrimRight(string(data), "\r\n")
	pid, err := strconv.Atoi(text)
	if err != nil || pid <= 0 || text[0] == '+' {
		return 0, fmt.Errorf("invalid PID number \"%s\" in \"%s\"", text, name)
	}
	return pid, nil
}

// errnoText formats a system error as nginx does: "(2: No such file or
// directory)".
func errnoText(err error) string { return errlog.Errno(err) }
