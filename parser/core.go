package parser

import (
	"strings"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// The main context and events {} (nginx's core and event modules).

var coreCommands = []command{
	{name: "worker_processes", ctx: cMain, args: take1, status: statusImplemented, set: setWorkerProcesses},
	{name: "worker_rlimit_nofile", ctx: cMain, args: take1, status: statusImplemented, set: setWorkerRlimitNofile},
	{name: "error_log", ctx: cMain | cHSL, args: more1, status: statusImplemented, set: setErrorLog},
	{name: "pid", ctx: cMain, args: take1, status: statusImplemented, set: setPID},
	{name: "daemon", ctx: cMain, args: flag, status: statusImplemented, set: setDaemon},
	{name: "events", ctx: cMain, args: noArgs, block: true, status: statusImplemented, set: setEvents},
	{name: "include", ctx: ^ctxKind(0), args: take1, status: statusImplemented, set: setInclude},
}

var eventsCommands = []command{
	{name: "worker_connections", ctx: cEvents, args: take1, status: statusImplemented, set: setWorkerConnections},
}

// mainOnce reports nginx's "is duplicate" for a main or events scalar
// set twice (-g counts as set first).
func (l *loader) mainOnce(n *lex.Node) error {
	if l.mainSeen[n.Name] {
		return l.dirErr(n, "is duplicate")
	}
	l.mainSeen[n.Name] = true
	return nil
}

func setWorkerProcesses(l *loader, _ *block, n *lex.Node) error {
	if err := l.mainOnce(n); err != nil {
		return err
	}
	if n.Args[0] == "auto" {
		l.cfg.WorkerProcesses = 0
		return nil
	}
	v, ok := parseNum(n.Args[0])
	if !ok {
		return l.dirErr(n, "invalid value")
	}
	l.cfg.WorkerProcesses = v
	return nil
}

func setWorkerRlimitNofile(l *loader, _ *block, n *lex.Node) error {
	if err := l.mainOnce(n); err != nil {
		return err
	}
	v, ok := parseNum(n.Args[0])
	if !ok {
		return l.dirErr(n, "invalid number")
	}
	l.cfg.WorkerRlimitNofile = v
	return nil
}

var logLevels = map[string]bool{
	"debug": true, "info": true, "notice": true, "warn": true,
	"error": true, "crit": true, "alert": true, "emerg": true,
}

// setErrorLog records main-level error logs. nginx also allows error_log
// in http, server and location to send those requests' errors elsewhere;
// gproxy keeps one error log, so there it is accepted with a warning.
func setErrorLog(l *loader, b *block, n *lex.Node) error {
	lg := config.Log{Path: n.Args[0], Level: "error", Pos: l.pos(n)}
	switch {
	case lg.Path == "stderr":
	case strings.HasPrefix(lg.Path, "syslog:"):
		// Checked in every context: nginx rejects a bad destination
		// before it looks at the level.
		sl, err := l.parseSyslog(n, lg.Path)
		if err != nil {
			return err
		}
		lg.Syslog = sl
	case strings.HasPrefix(lg.Path, "memory:"):
		return l.errf(n, `"memory:" error log is not supported by gproxy`)
	default:
		lg.Path = l.path(lg.Path)
	}
	for i, lv := range n.Args[1:] {
		if !logLevels[lv] && !(lv == "debug" || strings.HasPrefix(lv, "debug_")) {
			return l.errf(n, "invalid log level \"%s\"", lv)
		}
		if i == 0 {
			lg.Level = lv
		}
	}
	if b.kind != cMain {
		if !l.warned["error_log@"] {
			l.warned["error_log@"] = true
			l.warn(n, `"error_log" directive outside the main context is ignored by gproxy`)
		}
		return nil
	}
	l.cfg.ErrorLogs = append(l.cfg.ErrorLogs, lg)
	return nil
}

func setPID(l *loader, _ *block, n *lex.Node) error {
	if err := l.mainOnce(n); err != nil {
		return err
	}
	if n.Args[0] == "off" {
		l.cfg.PID = ""
		return nil
	}
	l.cfg.PID = l.path(n.Args[0])
	return nil
}

func setDaemon(l *loader, _ *block, n *lex.Node) error {
	if err := l.mainOnce(n); err != nil {
		return err
	}
	v, err := l.parseFlag(n, n.Args[0])
	l.cfg.Daemon = v
	return err
}

func setEvents(l *loader, _ *block, n *lex.Node) error {
	if l.events {
		return l.dirErr(n, "is duplicate")
	}
	l.events = true
	return l.walk(n.Children, &block{kind: cEvents})
}

func setWorkerConnections(l *loader, _ *block, n *lex.Node) error {
	if err := l.mainOnce(n); err != nil {
		return err
	}
	v, ok := parseNum(n.Args[0])
	if !ok {
		return l.errf(n, "invalid number \"%s\"", n.Args[0])
	}
	l.cfg.WorkerConnections = v
	return nil
}

func setInclude(l *loader, b *block, n *lex.Node) error {
	return l.include(b, n)
}
