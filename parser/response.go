package parser

import (
	"strings"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// What the client receives beyond the upstream's answer: add_header and
// add_trailer (nginx's headers filter), error_page, internal,
// recursive_error_pages and default_type (the core module).

var responseCommands = []command{
	{name: "add_header", ctx: cHSL | cLIF, args: take23, status: statusImplemented, set: setAddHeader},
	{name: "add_trailer", ctx: cHSL | cLIF, args: take23, status: statusImplemented, set: setAddHeader},
	{name: "error_page", ctx: cHSL | cLIF, args: more2, status: statusImplemented, set: setErrorPage},
	{name: "internal", ctx: cLoc, args: noArgs, status: statusImplemented, set: setInternal},
	{name: "recursive_error_pages", ctx: cHSL, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.RecursiveErrorPages = v })},
	{name: "default_type", ctx: cHSL, args: take1, status: statusImplemented,
		set: stringSetting(func(s *config.Settings, v string) { s.DefaultType = v })},
}

// setAddHeader reads `add_header NAME VALUE [always]` and add_trailer
// (ngx_http_headers_add): the third argument may only be "always".
func setAddHeader(l *loader, b *block, n *lex.Node) error {
	v, terr := parseTemplate(n.Args[1])
	if terr != nil {
		return l.errf(n, "%s", terr.msg)
	}
	l.useVars(v)
	h := config.AddHeader{Name: n.Args[0], Value: v}
	if len(n.Args) == 3 {
		if n.Args[2] != "always" {
			return l.errf(n, "invalid parameter \"%s\"", n.Args[2])
		}
		h.Always = true
	}
	trailer := n.Name == "add_trailer"
	b.add(n.Name, func(s *config.Settings, fresh bool) {
		list := &s.AddHeaders
		if trailer {
			list = &s.AddTrailers
		}
		if fresh {
			*list = nil
		}
		*list = append(*list, h)
	})
	return nil
}

// setErrorPage reads `error_page CODE ... [=[RESPONSE]] URI` as
// ngx_http_core_error_page does, with its messages.
func setErrorPage(l *loader, b *block, n *lex.Node) error {
	args := n.Args
	ep := config.ErrorPage{Overwrite: -1, Pos: l.pos(n)}
	codes := args[:len(args)-1]
	if last := codes[len(codes)-1]; strings.HasPrefix(last, "=") {
		if len(codes) == 1 {
			return l.errf(n, "invalid value \"%s\"", last)
		}
		ep.Overwrite = 0
		if len(last) > 1 {
			v, ok := parseNum(last[1:])
			if !ok {
				return l.errf(n, "invalid value \"%s\"", last)
			}
			ep.Overwrite = v
		}
		codes = codes[:len(codes)-1]
	}
	uri, terr := parseTemplate(args[len(args)-1])
	if terr != nil {
		return l.errf(n, "%s", terr.msg)
	}
	l.useVars(uri)
	ep.URI = uri
	for _, a := range codes {
		code, ok := parseNum(a)
		if !ok || code == 499 {
			return l.errf(n, "invalid value \"%s\"", a)
		}
		if code < 300 || code > 599 {
			return l.errf(n, "value \"%s\" must be between 300 and 599", a)
		}
		ep.Codes = append(ep.Codes, code)
	}
	if ep.Overwrite == -1 {
		// nginx's own codes for TLS and header errors become 400.
		for _, c := range ep.Codes {
			switch c {
			case 494, 495, 496, 497:
				ep.Overwrite = 400
			}
		}
	}
	b.add(n.Name, func(s *config.Settings, fresh bool) {
		if fresh {
			s.ErrorPages = nil
		}
		s.ErrorPages = append(s.ErrorPages, ep)
	})
	return nil
}

func setInternal(l *loader, b *block, n *lex.Node) error {
	b.loc.l.Internal = true
	return nil
}
