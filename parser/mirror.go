package parser

import (
	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// The mirror module: copies of requests sent to other locations, their
// responses ignored (nginx's ngx_http_mirror_module).

var mirrorCommands = []command{
	{name: "mirror", ctx: cHSL, args: take1, status: statusImplemented, set: setMirror},
	{name: "mirror_request_body", ctx: cHSL, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.MirrorRequestBody = v })},
}

// setMirror reads `mirror URI | off`. A level's mirror lines replace the
// inherited list as a whole; "off" leaves it empty.
func setMirror(l *loader, b *block, n *lex.Node) error {
	uri := n.Args[0]
	b.add(n.Name, func(s *config.Settings, fresh bool) {
		if fresh {
			s.Mirrors = nil
		}
		if uri != "off" {
			s.Mirrors = append(s.Mirrors, uri)
		}
	})
	return nil
}
