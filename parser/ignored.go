package parser

import (
	"fmt"
	"os"
	"os/user"
	"strings"

	"github.com/gproxy/gproxy/parser/lex"
)

// Directives gproxy accepts and ignores (file serving, compression, hash
// table sizes, OS tuning gproxy does itself). They change nothing a gRPC
// proxy does, but a configuration nginx rejects must still be rejected,
// so each keeps nginx's contexts, argument counts and value check, and a
// scalar set twice at one level is "duplicate" as in nginx's *_slot
// handlers.

// value checks an ignored directive's arguments; it returns nginx's
// message for a bad one, or "".
type value func(l *loader, n *lex.Node) (string, error)

// slot builds the setter of an ignored scalar: "is duplicate" first, then
// the value, as ngx_conf_set_*_slot do.
func slot(check value) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		return l.checkValue(n, check)
	}
}

// unique is slot without the duplicate check, for handlers that have none.
func unique(check value) setter {
	return func(l *loader, _ *block, n *lex.Node) error { return l.checkValue(n, check) }
}

func (l *loader) checkValue(n *lex.Node, check value) error {
	if check == nil {
		return nil
	}
	msg, err := check(l, n)
	if err != nil || msg == "" {
		return err
	}
	return l.errf(n, "%s", msg)
}

// Value checks with nginx's messages. dirMsg words a message the way
// nginx's slot functions do: `"name" directive MSG`.
func dirMsg(n *lex.Node, msg string) string { return fmt.Sprintf(`"%s" directive %s`, n.Name, msg) }

func isFlag(l *loader, n *lex.Node) (string, error) {
	_, err := l.parseFlag(n, n.Args[0])
	return "", err
}

func isNum(_ *loader, n *lex.Node) (string, error) {
	if _, ok := parseNum(n.Args[0]); !ok {
		return dirMsg(n, "invalid number"), nil
	}
	return "", nil
}

func isSize(_ *loader, n *lex.Node) (string, error) {
	if _, ok := parseSize(n.Args[0]); !ok {
		return dirMsg(n, "invalid value"), nil
	}
	return "", nil
}

func isOffset(_ *loader, n *lex.Node) (string, error) {
	if _, ok := parseOffset(n.Args[0]); !ok {
		return dirMsg(n, "invalid value"), nil
	}
	return "", nil
}

func isMsec(_ *loader, n *lex.Node) (string, error) {
	if _, ok := parseTime(n.Args[0], false); !ok {
		return dirMsg(n, "invalid value"), nil
	}
	return "", nil
}

func isSec(_ *loader, n *lex.Node) (string, error) {
	if _, ok := parseTime(n.Args[0], true); !ok {
		return dirMsg(n, "invalid value"), nil
	}
	return "", nil
}

// isEnum is ngx_conf_set_enum_slot: one of values, without regard to case.
func isEnum(values ...string) value {
	return func(_ *loader, n *lex.Node) (string, error) {
		if _, ok := oneOf(values, n.Args[0]); !ok {
			return fmt.Sprintf(`invalid value "%s"`, n.Args[0]), nil
		}
		return "", nil
	}
}

// numIn is a number with ngx_conf_check_num_bounds.
func numIn(lo, hi int) value {
	return func(l *loader, n *lex.Node) (string, error) {
		v, ok := parseNum(n.Args[0])
		if !ok {
			return dirMsg(n, "invalid number"), nil
		}
		if v < lo || v > hi {
			return fmt.Sprintf("value must be between %d and %d", lo, hi), nil
		}
		return "", nil
	}
}

// orValue accepts the words or what check accepts, with check's message.
func orValue(check value, words ...string) value {
	return func(l *loader, n *lex.Node) (string, error) {
		if contains(words, n.Args[0]) {
			return "", nil
		}
		return check(l, n)
	}
}

// isBufs is ngx_conf_set_bufs_slot: a nonzero number and a nonzero size.
func isBufs(_ *loader, n *lex.Node) (string, error) {
	num, ok := parseNum(n.Args[0])
	if !ok || num == 0 {
		return dirMsg(n, "invalid value"), nil
	}
	size, ok := parseSize(n.Args[1])
	if !ok || size == 0 {
		return dirMsg(n, "invalid value"), nil
	}
	return "", nil
}

// sizeWhere is a size that must also pass ok, or nginx says msg.
func sizeWhere(ok func(int64) bool, msg func(n *lex.Node) string) value {
	return func(_ *loader, n *lex.Node) (string, error) {
		v, valid := parseSize(n.Args[0])
		if !valid {
			return dirMsg(n, "invalid value"), nil
		}
		if !ok(v) {
			return msg(n), nil
		}
		return "", nil
	}
}

func isPowerOfTwo(_ *loader, n *lex.Node) (string, error) {
	v, ok := parseNum(n.Args[0])
	if !ok {
		return dirMsg(n, "invalid number"), nil
	}
	if v == 0 || v&(v-1) != 0 {
		return dirMsg(n, "must be a power of two"), nil
	}
	return "", nil
}

// isParams checks `key=value` parameters of open_file_cache and
// open_log_file_cache: "off" alone, or max= with the others optional.
func isParams(params map[string]func(string) bool, noMax string) value {
	return func(_ *loader, n *lex.Node) (string, error) {
		hasMax, off := false, false
		for _, a := range n.Args {
			if a == "off" {
				off = true
				continue
			}
			key, v, _ := strings.Cut(a, "=")
			ok := params[key]
			if ok == nil || !strings.Contains(a, "=") || !ok(v) {
				return fmt.Sprintf(`invalid "%s" parameter "%s"`, n.Name, a), nil
			}
			hasMax = hasMax || key == "max"
		}
		if !hasMax && !off {
			return fmt.Sprintf(noMax, n.Name), nil
		}
		return "", nil
	}
}

func positive(v string) bool { n, ok := parseNum(v); return ok && n > 0 }
func count(v string) bool    { _, ok := parseNum(v); return ok }
func secs(v string) bool     { _, ok := parseTime(v, true); return ok }

var openFileCacheParams = map[string]func(string) bool{"max": positive, "inactive": secs}

var openLogFileCacheParams = map[string]func(string) bool{
	"max": positive, "inactive": secs, "min_uses": count, "valid": secs,
}

// isDisableSymlinks reads `off | on | if_not_owner [from=path]`.
func isDisableSymlinks(_ *loader, n *lex.Node) (string, error) {
	mode := ""
	for _, a := range n.Args {
		switch {
		case a == "off" || a == "on" || a == "if_not_owner":
			mode = a
		case strings.HasPrefix(a, "from="):
		default:
			return fmt.Sprintf(`invalid parameter "%s"`, a), nil
		}
	}
	if mode == "" {
		return fmt.Sprintf(`invalid parameter "%s"`, n.Args[0]), nil
	}
	if mode == "off" && len(n.Args) == 2 {
		return `"from=" cannot be used with "off" parameter`, nil
	}
	return "", nil
}

// isAio reads `off | on | threads[=pool]`; nginx's Linux packages are
// built without file AIO, and have only the default thread pool unless
// thread_pool (unsupported by gproxy) defines another.
func isAio(_ *loader, n *lex.Node) (string, error) {
	switch v := n.Args[0]; {
	case v == "off" || v == "threads" || v == "threads=default":
		return "", nil
	case v == "on":
		return `"aio on" is unsupported on this platform`, nil
	case strings.HasPrefix(v, "threads="):
		return fmt.Sprintf(`unknown thread pool "%s"`, v[len("threads="):]), nil
	}
	return dirMsg(n, "invalid value"), nil
}

// isPriority is worker_priority: a number with an optional sign.
func isPriority(_ *loader, n *lex.Node) (string, error) {
	v := strings.TrimLeft(n.Args[0], "+-")
	if len(n.Args[0])-len(v) > 1 {
		return dirMsg(n, "invalid number"), nil
	}
	if _, ok := parseNum(v); !ok {
		return dirMsg(n, "invalid number"), nil
	}
	return "", nil
}

// isCPUAffinity is worker_cpu_affinity: "auto" and at most one mask, or
// masks of 0 and 1.
func isCPUAffinity(_ *loader, n *lex.Node) (string, error) {
	masks := n.Args
	if masks[0] == "auto" {
		if len(masks) > 2 {
			return fmt.Sprintf(`invalid number of arguments in "%s" directive`, n.Name), nil
		}
		masks = masks[1:]
	}
	for _, m := range masks {
		// nginx reads a mask from its last character, CPU 0 first.
		for i := len(m) - 1; i >= 0; i-- {
			if m[i] != '0' && m[i] != '1' {
				return fmt.Sprintf(`invalid character "%c" in "%s"`, m[i], n.Name), nil
			}
		}
	}
	return "", nil
}

// isUser is `user name [group]`: as nginx, with super-user rights the
// names must exist (the group defaults to the user's name).
func isUser(l *loader, n *lex.Node) (string, error) {
	if os.Geteuid() != 0 {
		l.warn(n, `the "user" directive makes sense only if the master process runs with super-user privileges, ignored`)
		return "", nil
	}
	if _, err := user.Lookup(n.Args[0]); err != nil {
		return fmt.Sprintf(`getpwnam("%s") failed`, n.Args[0]), nil
	}
	group := n.Args[len(n.Args)-1]
	if _, err := user.LookupGroup(group); err != nil {
		return fmt.Sprintf(`getgrnam("%s") failed`, group), nil
	}
	return "", nil
}

// isEventType is `use`: the event methods nginx is built with on Linux.
func isEventType(_ *loader, n *lex.Node) (string, error) {
	if n.Args[0] != "epoll" {
		return fmt.Sprintf(`invalid event type "%s"`, n.Args[0]), nil
	}
	return "", nil
}

// isRegexes is gzip_disable: each argument a caseless regex, or one of
// nginx's two shorthands.
func isRegexes(l *loader, n *lex.Node) (string, error) {
	for _, a := range n.Args {
		if a == "msie6" || a == "degradation" {
			continue
		}
		if _, err := l.compileRegex(n, a, true); err != nil {
			return "", err
		}
	}
	return "", nil
}

// ignoredBits is an ignored ngx_conf_set_bitmask_slot directive.
func ignoredBits(values ...string) setter { return bitmaskSetting(values, nil) }

var ignoredCommands = concat(
	ignored(cMain, more1, slot(isCPUAffinity), "worker_cpu_affinity"),
	ignored(cMain, take1, nil, "env"),
	ignored(cMain, take1, unique(isPriority), "worker_priority"),
	ignored(cMain, take1, slot(isOffset), "worker_rlimit_core"),
	ignored(cMain, take1, slot(nil), "working_directory", "lock_file"),
	ignored(cMain, take1, slot(isEnum("stop", "abort")), "debug_points"),
	ignored(cMain, take1, slot(isMsec), "timer_resolution"),
	ignored(cMain, flag, slot(isFlag), "master_process", "pcre_jit"),

	ignored(cEvents, take1, slot(isEventType), "use"),
	ignored(cEvents, take1, slot(isMsec), "accept_mutex_delay"),
	ignored(cEvents, take1, slot(isNum), "worker_aio_requests"),
	ignored(cEvents, flag, slot(isFlag), "multi_accept", "accept_mutex"),

	[]command{{name: "types", ctx: cHSL, args: noArgs, block: true, status: statusIgnored, set: setTypes}},
	ignored(cHSL|cLIF, take1, slot(nil), "charset", "source_charset"),
	ignored(cHSL|cLIF, flag, slot(isFlag), "override_charset", "sendfile", "gzip"),
	ignored(cHSL|cLIF|cSIF, flag, slot(isFlag), "uninitialized_variable_warn", "rewrite_log"),
	ignored(cHSL, flag, slot(isFlag), "etag", "server_name_in_redirect", "port_in_redirect", "absolute_redirect",
		"msie_padding", "msie_refresh", "log_not_found", "log_subrequest", "open_file_cache_errors",
		"chunked_transfer_encoding", "tcp_nopush", "tcp_nodelay", "reset_timedout_connection", "gzip_vary",
		"client_body_in_single_buffer"),
	ignored(cHTTP|cServer, flag, slot(isFlag), "merge_slashes", "ignore_invalid_headers", "underscores_in_headers"),
	ignored(cHSL, take1, slot(isEnum("off", "exact", "before")), "if_modified_since"),
	ignored(cHSL, take1, slot(isEnum("off", "on", "always")), "lingering_close", "gzip_static"),
	ignored(cHSL, take1, slot(isEnum("1.0", "1.1")), "gzip_http_version"),
	ignored(cHSL, take1, slot(isEnum("off", "on", "build")), "server_tokens"),
	ignored(cHSL, take12, ignoredBits("none", "msie6", "safari"), "keepalive_disable"),
	ignored(cHSL, more1, ignoredBits("off", "expired", "no-cache", "no-store", "private", "no_last_modified",
		"no_etag", "auth", "any"), "gzip_proxied"),
	ignored(cHSL, take12, slot(isParams(openFileCacheParams, `"%s" must have the "max" parameter`)), "open_file_cache"),
	ignored(cHSL, take1|take2|take3|take4, slot(isParams(openLogFileCacheParams, `"%s" must have "max" parameter`)), "open_log_file_cache"),
	ignored(cHSL, take12, slot(isDisableSymlinks), "disable_symlinks"),
	ignored(cHSL, take1, slot(orValue(isOffset, "off")), "directio"),
	ignored(cHSL, take1, slot(isAio), "aio"),
	ignored(cHSL, more1, mimeTypes, "charset_types", "gzip_types"),
	ignored(cHSL, more1, unique(isRegexes), "gzip_disable"),
	ignored(cHSL, take1, slot(numIn(1, 9)), "gzip_comp_level"),
	ignored(cHSL, take1, slot(isNum), "open_file_cache_min_uses", "max_ranges", "types_hash_bucket_size", "types_hash_max_size"),
	ignored(cHTTP, take1, slot(isNum), "server_names_hash_bucket_size", "server_names_hash_max_size",
		"variables_hash_bucket_size", "variables_hash_max_size", "map_hash_bucket_size", "map_hash_max_size"),
	ignored(cHSL, take1, slot(isSize), "gzip_min_length", "read_ahead", "client_body_buffer_size", "sendfile_max_chunk",
		"postpone_output", "subrequest_output_buffer_size"),
	ignored(cHSL, take1, slot(func(l *loader, n *lex.Node) (string, error) {
		if msg, err := isSize(l, n); msg != "" || err != nil {
			return msg, err
		}
		// Linux has no SO_SNDLOWAT.
		l.warn(n, `"send_lowat" is not supported, ignored`)
		return "", nil
	}), "send_lowat"),
	ignored(cHTTP|cServer, take1, slot(isSize), "client_header_buffer_size"),
	ignored(cHSL, take2, slot(isBufs), "gzip_buffers", "output_buffers"),
	ignored(cHSL, take1, slot(isMsec), "lingering_time", "lingering_timeout"),
	ignored(cHSL, take1, slot(isSec), "open_file_cache_valid"),
	// gproxy serves no files: where nginx would, gproxy answers 404 (see
	// Table.Route), so the file-serving settings change nothing.
	ignored(cHSL|cLIF, take1, slot(nil), "root"),
	ignored(cHSL, more1, func(l *loader, _ *block, n *lex.Node) error { return l.checkValue(n, isIndex) }, "index"),
	ignored(cHSL, take1|take2|take3|take4, slot(isTempPath), "client_body_temp_path", "proxy_temp_path",
		"fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"),
)

// isIndex is ngx_http_index_set_index's check: no empty name; an absolute
// path before the last is only a warning.
func isIndex(l *loader, n *lex.Node) (string, error) {
	for i, a := range n.Args {
		if a == "" {
			return fmt.Sprintf(`index "" in "%s" directive is invalid`, n.Name), nil
		}
		if strings.HasPrefix(a, "/") && i != len(n.Args)-1 {
			l.warn(n, `only the last index in "%s" directive should be absolute`, n.Name)
		}
	}
	return "", nil
}

// isTempPath is ngx_conf_set_path_slot: a path and up to three levels of
// hashed subdirectories, each a positive number.
func isTempPath(_ *loader, n *lex.Node) (string, error) {
	for _, a := range n.Args[1:] {
		if v, ok := parseNum(a); !ok || v == 0 {
			return dirMsg(n, "invalid value"), nil
		}
	}
	return "", nil
}

// http2Ignored are the settings of nginx's HTTP/2 module that gproxy's
// engine sizes itself, and those nginx 1.19.7 made obsolete (nginx warns
// and ignores their value).
var http2Ignored = concat(
	ignored(cHTTP, take1, slot(sizeWhere(func(v int64) bool { return v > 32 },
		func(n *lex.Node) string { return dirMsg(n, "value is too small") })), "http2_recv_buffer_size"),
	ignored(cHTTP|cServer, take1, slot(isPowerOfTwo), "http2_streams_index_size"),
	obsolete("keepalive_timeout", "http2_idle_timeout"),
	obsolete("keepalive_requests", "http2_max_requests"),
	obsolete("large_client_header_buffers", "http2_max_field_size", "http2_max_header_size"),
	obsolete("client_header_timeout", "http2_recv_timeout"),
)

// obsolete builds entries for directives nginx still reads only to warn
// that another replaces them.
func obsolete(instead string, names ...string) []command {
	return ignored(cHTTP|cServer, take1, func(l *loader, _ *block, n *lex.Node) error {
		l.warn(n, `the "%s" directive is obsolete, use the "%s" directive instead`, n.Name, instead)
		return nil
	}, names...)
}

// isZone is the upstream zone: a name and, where the zone is defined, a
// size of at least eight pages.
func isZone(_ *loader, n *lex.Node) (string, error) {
	if n.Args[0] == "" {
		return fmt.Sprintf(`invalid zone name "%s"`, n.Args[0]), nil
	}
	if len(n.Args) == 1 {
		return "", nil
	}
	size, ok := parseSize(n.Args[1])
	if !ok {
		return fmt.Sprintf(`invalid zone size "%s"`, n.Args[1]), nil
	}
	if size < int64(8*os.Getpagesize()) {
		return fmt.Sprintf(`zone "%s" is too small`, n.Args[0]), nil
	}
	return "", nil
}

// mimeTypes is ngx_http_types_slot (charset_types, gzip_types): the list
// starts with text/html and grows with each directive at one level; a
// type given twice (without regard to case) is a warning; "*" means any
// type and ends the list.
func mimeTypes(l *loader, b *block, n *lex.Node) error {
	if b.lvl.bits == nil {
		b.lvl.bits = map[string][]string{}
	}
	types, ok := b.lvl.bits[n.Name]
	if !ok {
		types = []string{"text/html"}
	}
	if contains(types, "*") {
		return nil
	}
	for _, a := range n.Args {
		if a == "*" {
			types = []string{"*"}
			break
		}
		if contains(types, lower(a)) {
			l.warn(n, `duplicate MIME type "%s"`, a)
			continue
		}
		types = append(types, lower(a))
	}
	b.lvl.bits[n.Name] = types
	return nil
}

// cTypes is the body of types {}; handle sends its entries to typesEntry.
const cTypes ctxKind = 1 << 14

// setTypes reads types {}: gproxy serves no files, but nginx checks the
// entries and warns about an extension mapped twice at one level.
func setTypes(l *loader, b *block, n *lex.Node) error {
	return l.walk(n.Children, &block{kind: cTypes, lvl: b.lvl})
}

// typesEntry reads `type extension ...;` or `include file;`.
func (l *loader) typesEntry(b *block, n *lex.Node) error {
	if n.Block {
		return l.errf(n, `unexpected "{"`)
	}
	if n.Name == "include" {
		if len(n.Args) != 1 {
			return l.errf(n, `invalid number of arguments in "include" directive`)
		}
		return l.include(b, n)
	}
	if b.lvl.exts == nil {
		b.lvl.exts = map[string]string{}
	}
	for _, ext := range n.Args {
		key := lower(ext)
		if prev, dup := b.lvl.exts[key]; dup {
			l.warn(n, `duplicate extension "%s", content type: "%s", previous content type: "%s"`, key, n.Name, prev)
			continue
		}
		b.lvl.exts[key] = n.Name
	}
	return nil
}
