package route

import (
	"regexp"
	"strings"
	"testing"

	"github.com/gproxy/gproxy/parser/config"
)

// tpl splits "text $var ${var}text" into a Template, the way the parser
// does, so tests can write templates as nginx does.
func tpl(s string) config.Template {
	t := config.Template{Raw: s}
	lit := strings.Builder{}
	flush := func() {
		if lit.Len() > 0 {
			t.Parts = append(t.Parts, config.TemplatePart{Literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			lit.WriteByte(s[i])
			continue
		}
		j := i + 1
		var name string
		if s[j] == '{' {
			k := strings.IndexByte(s[j:], '}')
			name, i = s[j+1:j+k], j+k
		} else {
			k := j
			for k < len(s) && (s[k] == '_' || s[k] >= 'a' && s[k] <= 'z' || s[k] >= 'A' && s[k] <= 'Z' || s[k] >= '0' && s[k] <= '9') {
				k++
			}
			name, i = s[j:k], k-1
		}
		flush()
		t.Parts = append(t.Parts, config.TemplatePart{Var: name})
	}
	flush()
	return t
}

func pos(line int) config.Pos { return config.Pos{File: "/etc/nginx/nginx.conf", Line: line} }

// srv builds a server listening on addr with the given server_name values
// written as in nginx ("~re" for regexes).
func srv(addr string, names ...string) *config.Server {
	s := &config.Server{Listens: []config.Listen{{Network: "tcp", Address: addr}}, Pos: pos(1)}
	for _, n := range names {
		sn := config.ServerName{Name: strings.ToLower(n)}
		switch {
		case strings.HasPrefix(n, "~"):
			sn.Kind, sn.Regex, sn.Name = config.NameRegex, regexp.MustCompile(n[1:]), n[1:]
		case strings.HasPrefix(n, "*.") || strings.HasPrefix(n, "."):
			sn.Kind = config.NameWildcardStart
		case strings.HasSuffix(n, ".*"):
			sn.Kind = config.NameWildcardEnd
		}
		s.Names = append(s.Names, sn)
	}
	return s
}

// loc builds a location from nginx syntax: "= /x", "^~ /x", "~ re",
// "~* re", "@name" or "/x".
func loc(spec string, nested ...*config.Location) *config.Location {
	l := &config.Location{Locations: nested, Pos: pos(2)}
	mod, path, ok := strings.Cut(spec, " ")
	if !ok {
		mod, path = "", spec
	}
	switch mod {
	case "=":
		l.Kind = config.LocExact
	case "^~":
		l.Kind = config.LocPrefixNoRegex
	case "~":
		l.Kind, l.Regex = config.LocRegex, regexp.MustCompile(path)
	case "~*":
		l.Kind, l.Regex = config.LocRegexCaseless, regexp.MustCompile("(?i)"+path)
	case "":
		l.Kind = config.LocPrefix
		if strings.HasPrefix(path, "@") {
			l.Kind = config.LocNamed
		}
	}
	l.Path = path
	l.GRPCPass = &config.GRPCPass{Scheme: "grpc"}
	return l
}

func mustNew(t testing.TB, h *config.HTTP) *Table {
	t.Helper()
	tb, err := New(h)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tb
}

func ret(code int, text string) config.RewriteStep {
	return config.RewriteStep{Return: &config.Return{Code: code, Text: tpl(text), Pos: pos(3)}}
}

func ifStep(op, left, right string, body ...config.RewriteStep) config.RewriteStep {
	c := config.IfCond{Op: op, Left: tpl(left)}
	switch op {
	case "=", "!=":
		c.Right = tpl(right)
	case "~", "!~":
		c.Regex = regexp.MustCompile(right)
	case "~*", "!~*":
		c.Regex = regexp.MustCompile("(?i)" + right)
	}
	return config.RewriteStep{If: &config.If{Cond: c, Body: body, Pos: pos(4)}}
}
