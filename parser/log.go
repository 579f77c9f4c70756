package parser

import (
	"strings"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// log_format and access_log (nginx's log module).

var logCommands = []command{
	{name: "log_format", ctx: cHTTP, args: more2, status: statusImplemented, set: setLogFormat},
	{name: "access_log", ctx: cHSL | cLIF, args: more1, status: statusImplemented, set: setAccessLog},
}

// combinedLog is nginx's predefined "combined" format.
const combinedLog = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`

func combinedFormat() *config.LogFormat {
	t, _ := parseTemplate(combinedLog)
	return &config.LogFormat{Name: "combined", Escape: "default", Format: t}
}

func setLogFormat(l *loader, b *block, n *lex.Node) error {
	name := n.Args[0]
	if _, dup := l.http.h.LogFormats[name]; dup {
		return l.errf(n, `duplicate "log_format" name "%s"`, name)
	}
	lf := &config.LogFormat{Name: name, Escape: "default", Pos: l.pos(n)}
	parts := n.Args[1:]
	if strings.HasPrefix(parts[0], "escape=") {
		lf.Escape = parts[0][len("escape="):]
		switch lf.Escape {
		case "default", "json", "none":
		default:
			return l.errf(n, "unknown log format escaping \"%s\"", lf.Escape)
		}
		parts = parts[1:]
		if len(parts) == 0 {
			return l.errf(n, "invalid number of arguments in \"%s\" directive", n.Name)
		}
	}
	// nginx compiles each argument on its own, so a variable name ends
	// where its argument ends; the pieces are then written one after the
	// other.
	t := config.Template{Raw: strings.Join(parts, "")}
	for _, part := range parts {
		pt, terr := parseTemplate(part)
		if terr != nil {
			if strings.HasPrefix(terr.msg, "the closing bracket") {
				return l.errf(n, "%s", terr.msg)
			}
			return l.errf(n, "invalid parameter \"%s\"", terr.badName)
		}
		t.Parts = append(t.Parts, pt.Parts...)
	}
	lf.Format = t
	l.useVars(t)
	l.http.h.LogFormats[name] = lf
	return nil
}

// setAccessLog reads `access_log off` or `access_log path [format
// [buffer=size] [flush=time] [if=condition]]`.
func setAccessLog(l *loader, b *block, n *lex.Node) error {
	if b.kind == cLIF {
		return l.errf(n, `"access_log" directive inside "if" is not supported by gproxy`)
	}
	if n.Args[0] == "off" {
		if len(n.Args) > 1 {
			return l.errf(n, "invalid parameter \"%s\"", n.Args[1])
		}
		b.add(n.Name, func(s *config.Settings, fresh bool) {
			s.AccessLogs = nil
			s.AccessLogOff = true
		})
		return nil
	}
	lg := config.Log{Path: n.Args[0], Format: "combined", Pos: l.pos(n)}
	if strings.HasPrefix(lg.Path, "syslog:") {
		// nginx checks the destination before the format name.
		sl, err := l.parseSyslog(n, lg.Path)
		if err != nil {
			return err
		}
		lg.Syslog = sl
	} else if lg.Path != "stderr" && lg.Path != "/dev/stderr" && lg.Path != "/dev/stdout" {
		if strings.IndexByte(lg.Path, '$') >= 0 {
			return l.errf(n, "access_log with variables in its path is not supported by gproxy")
		}
		lg.Path = l.path(lg.Path)
	}
	if len(n.Args) > 1 {
		lg.Format = n.Args[1]
		if _, ok := l.http.h.LogFormats[lg.Format]; !ok {
			return l.errf(n, "unknown log format \"%s\"", lg.Format)
		}
	}
	for _, p := range n.Args[min(2, len(n.Args)):] {
		switch {
		case strings.HasPrefix(p, "buffer="):
			v, ok := parseSize(p[len("buffer="):])
			if !ok {
				return l.errf(n, "invalid buffer size \"%s\"", p[len("buffer="):])
			}
			lg.Buffer = int(v)
		case strings.HasPrefix(p, "flush="):
			v, ok := parseTime(p[len("flush="):], false)
			if !ok || v == 0 {
				return l.errf(n, "invalid flush time \"%s\"", p[len("flush="):])
			}
			lg.Flush = v
		case strings.HasPrefix(p, "if="):
			t, terr := parseTemplate(p[len("if="):])
			if terr != nil {
				return l.errf(n, "%s", terr.msg)
			}
			l.useVars(t)
			lg.If = &t
		case p == "gzip" || strings.HasPrefix(p, "gzip="):
			return l.errf(n, `the "gzip" parameter of the "access_log" directive is not supported by gproxy`)
		default:
			return l.errf(n, "invalid parameter \"%s\"", p)
		}
	}
	if lg.Flush != 0 && lg.Buffer == 0 {
		return l.errf(n, "no buffer is defined for access_log \"%s\"", n.Args[0])
	}
	if lg.Buffer != 0 {
		if lg.Syslog != nil {
			return l.errf(n, "logs to syslog cannot be buffered")
		}
		hs := l.http
		if prev, ok := hs.logBuffers[lg.Path]; ok {
			if prev.Buffer != lg.Buffer || prev.Flush != lg.Flush {
				return l.errf(n, "access_log \"%s\" already defined with conflicting parameters", n.Args[0])
			}
		} else {
			if hs.logBuffers == nil {
				hs.logBuffers = map[string]config.Log{}
			}
			hs.logBuffers[lg.Path] = lg
		}
	}
	b.add(n.Name, func(s *config.Settings, fresh bool) {
		if fresh {
			s.AccessLogs = nil
			s.AccessLogOff = false
		}
		s.AccessLogs = append(s.AccessLogs, lg)
	})
	return nil
}
