// Command gproxy is a gRPC load balancer that reads nginx.conf.
//
// It takes nginx's command line and prints nginx's messages:
//
//	gproxy [-?hvVtTq] [-s signal] [-p prefix] [-e filename] [-c filename] [-g directives]
//
// -t tests a configuration, -T also dumps every file read to stdout, -q
// keeps -t quiet unless something is wrong, -s stop|quit|reopen|reload
// signals the running gproxy named by the pid file, and without -t or -s
// gproxy runs the configuration: in the background (`daemon on`, the
// default; the command returns once gproxy listens) or in the foreground
// (`daemon off`).
//
// Compiled-in defaults (see flags.go; change them with -ldflags -X):
// configuration /etc/nginx/nginx.conf, prefix /etc/gproxy/, error log
// logs/error.log and pid file logs/nginx.pid under the prefix. Relative -c and -e
// paths resolve against the prefix, relative include paths against the
// configuration file's directory, as in nginx.
//
// Signals: TERM and INT stop at once; QUIT stops gracefully (GOAWAY, then
// up to worker_shutdown_timeout, 30s by default, for streams in flight);
// HUP re-reads the configuration and swaps it in, or logs why not and
// keeps serving the old one; USR1 reopens the log files; USR2 starts a new
// binary on the same listening sockets; WINCH makes an old binary stop
// serving gracefully and wait.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gproxy/gproxy/parser"
)

func main() {
	os.Exit(gproxy(os.Args[1:], os.Stdout, os.Stderr))
}

// gproxy runs the command line args and returns the exit status. Messages
// go to stderr as nginx writes them; only -T's dump goes to stdout.
func gproxy(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "gproxy: %s\n", err)
		return 1
	}
	if o.version {
		showVersion(stderr, o)
		if !o.test {
			return 0
		}
	}
	p, err := o.paths()
	if err != nil {
		fmt.Fprintf(stderr, "gproxy: [emerg] %s\n", err)
		return 1
	}
	switch {
	case o.test:
		return testConfig(p, o, stdout, stderr)
	case o.signal != "":
		return sendSignal(p, o, stderr)
	default:
		return run(p, o, args, stderr)
	}
}

// diagnostic renders a load error as nginx prints it after the program name:
// "[emerg] MSG in FILE:LINE". Errors that are not parser diagnostics (none
// are expected) still get a level so every line has nginx's shape.
func diagnostic(err error) string {
	var d *parser.Diagnostic
	if errors.As(err, &d) {
		return d.Error()
	}
	return "[emerg] " + err.Error()
}
