package parser

import (
	"os"

	"github.com/gproxy/gproxy/parser/lex"
)

// The main-context directives that act on the process itself: whose
// account it runs as, and how long a graceful stop may take.

var processCommands = []command{
	{name: "user", ctx: cMain, args: take12, status: statusImplemented, set: setUser},
	{name: "worker_shutdown_timeout", ctx: cMain, args: take1, status: statusImplemented, set: setWorkerShutdownTimeout},
}

// setUser is `user name [group]`. As in nginx, it means something only to
// a process started as root: otherwise it is a warning (isUser says so)
// and nothing changes. The group defaults to the user's name, as nginx's.
func setUser(l *loader, b *block, n *lex.Node) error {
	if err := l.mainOnce(n); err != nil {
		return err
	}
	if err := l.checkValue(n, isUser); err != nil {
		return err
	}
	if !runningAsRoot() {
		return nil
	}
	l.cfg.User = n.Args[0]
	l.cfg.Group = n.Args[len(n.Args)-1]
	return nil
}

func setWorkerShutdownTimeout(l *loader, _ *block, n *lex.Node) error {
	if err := l.mainOnce(n); err != nil {
		return err
	}
	d, ok := parseTime(n.Args[0], false)
	if !ok {
		return l.dirErr(n, "invalid value")
	}
	l.cfg.WorkerShutdownTimeout = d
	return nil
}

// runningAsRoot reports whether `user` can take effect.
func runningAsRoot() bool { return os.Geteuid() == 0 }
