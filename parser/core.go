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

// checkFlag, checkNum, checkSize, checkOffset, checkMsec and checkSec
// validate an ignored directive's value with nginx's setter, so a typo is
// still an error.
func checkFlag(l *loader, _ *block, n *lex.Node) error {
	_, err := l.parseFlag(n, n.Args[0])
	return err
}

func checkNum(l *loader, _ *block, n *lex.Node) error {
	if _, ok := parseNum(n.Args[0]); !ok {
		return l.dirErr(n, "invalid number")
	}
	return nil
}

func checkSize(l *loader, _ *block, n *lex.Node) error {
	if _, ok := parseSize(n.Args[0]); !ok {
		return l.dirErr(n, "invalid value")
	}
	return nil
}

func checkOffset(l *loader, _ *block, n *lex.Node) error {
	if _, ok := parseOffset(n.Args[0]); !ok {
		return l.dirErr(n, "invalid value")
	}
	return nil
}

func checkMsec(l *loader, _ *block, n *lex.Node) error {
	if _, ok := parseTime(n.Args[0], false); !ok {
		return l.dirErr(n, "invalid value")
	}
	return nil
}

func checkSec(l *loader, _ *block, n *lex.Node) error {
	if _, ok := parseTime(n.Args[0], true); !ok {
		return l.dirErr(n, "invalid value")
	}
	return nil
}

// ignoredCommands are directives that change nothing a gRPC proxy does
// (file serving, compression, hash table sizes, OS tuning gproxy does
// itself); they are accepted with one warning per name.
var ignoredCommands = concat(
	ignored(cMain, take12, nil, "user"),
	ignored(cMain, more1, nil, "worker_cpu_affinity", "env"),
	ignored(cMain, take1, nil, "worker_priority", "worker_rlimit_core", "working_directory", "lock_file", "debug_points"),
	ignored(cMain, take1, checkMsec, "worker_shutdown_timeout", "timer_resolution"),
	ignored(cMain, flag, checkFlag, "master_process", "pcre_jit"),
	ignored(cEvents, take1, nil, "use"),
	ignored(cEvents, take1, checkMsec, "accept_mutex_delay"),
	ignored(cEvents, take1, checkNum, "worker_aio_requests"),
	ignored(cEvents, flag, checkFlag, "multi_accept", "accept_mutex"),
	ignoredBlock(cHSL, noArgs, "types"),
	ignored(cHSL, take1, nil, "default_type", "charset", "source_charset", "override_charset", "etag", "if_modified_since",
		"keepalive_disable", "lingering_close", "server_name_in_redirect", "port_in_redirect", "absolute_redirect",
		"msie_padding", "msie_refresh", "log_not_found", "log_subrequest", "open_file_cache", "open_file_cache_errors",
		"disable_symlinks", "gzip_http_version", "chunked_transfer_encoding", "merge_slashes", "server_tokens", "directio", "aio", "read_ahead"),
	ignored(cHSL, more1, nil, "charset_types", "gzip_types", "gzip_disable", "gzip_proxied", "open_log_file_cache"),
	ignored(cHSL, flag, checkFlag, "sendfile", "tcp_nopush", "tcp_nodelay", "reset_timedout_connection", "gzip", "gzip_vary",
		"gzip_static", "ignore_invalid_headers", "underscores_in_headers", "recursive_error_pages",
		"uninitialized_variable_warn", "rewrite_log", "client_body_in_single_buffer"),
	ignored(cHSL, take1, checkNum, "gzip_comp_level", "gzip_min_length", "open_file_cache_min_uses",
		"server_names_hash_bucket_size", "server_names_hash_max_size", "types_hash_bucket_size", "types_hash_max_size",
		"variables_hash_bucket_size", "variables_hash_max_size", "map_hash_bucket_size", "map_hash_max_size", "max_ranges"),
	ignored(cHSL, take1, checkSize, "client_body_buffer_size", "client_header_buffer_size", "sendfile_max_chunk",
		"postpone_output", "send_lowat", "subrequest_output_buffer_size"),
	ignored(cHSL, take2, nil, "gzip_buffers", "output_buffers"),
	ignored(cHSL, take1, checkMsec, "client_header_timeout", "client_body_timeout", "send_timeout",
		"lingering_time", "lingering_timeout", "open_file_cache_valid"),
)
