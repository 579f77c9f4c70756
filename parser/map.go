package parser

import (
	"strings"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// map $source $target { ... } (nginx's map module). Its body holds
// entries, not directives: each is `key value;`, or one of `default`,
// `hostnames`, `volatile`, `include`.

// cMap is the body of a map block; handle sends its entries to mapEntry.
const cMap ctxKind = 1 << 15

var mapCommands = []command{
	{name: "map", ctx: cHTTP, args: take2, block: true, status: statusImplemented, set: setMap},
}

type mapState struct {
	m          *config.Map
	hasDefault bool
}

func setMap(l *loader, _ *block, n *lex.Node) error {
	src, terr := parseTemplate(n.Args[0])
	if terr != nil {
		return l.errf(n, "%s", terr.msg)
	}
	l.useVars(src)
	target := n.Args[1]
	if len(target) < 2 || target[0] != '$' {
		return l.errf(n, "invalid variable name \"%s\"", target)
	}
	target = target[1:]
	if builtinVars[target] && !contains(config.OwnVariables, target) {
		return l.errf(n, "the duplicate \"%s\" variable", target)
	}
	l.http.mapVars[target] = true
	m := &config.Map{Source: src, Target: target, Exact: map[string]config.Template{}, Pos: l.pos(n)}
	l.http.h.Maps = append(l.http.h.Maps, m)
	return l.walk(n.Children, &block{kind: cMap, m: &mapState{m: m}})
}

// mapEntry reads one line of a map body.
func (l *loader) mapEntry(b *block, n *lex.Node) error {
	ms := b.m
	if n.Block {
		return l.errf(n, `unexpected "{"`)
	}
	if len(n.Args) == 0 {
		switch n.Name {
		case "hostnames":
			ms.m.Hostnames = true
			return nil
		case "volatile":
			ms.m.Volatile = true
			return nil
		}
	}
	if n.Name == "include" && len(n.Args) == 1 {
		return l.include(b, n)
	}
	if len(n.Args) != 1 {
		return l.errf(n, "invalid number of the map parameters")
	}
	val, terr := parseTemplate(n.Args[0])
	if terr != nil {
		return l.errf(n, "%s", terr.msg)
	}
	l.useVars(val)
	key := n.Name
	switch {
	case key == "default":
		if ms.hasDefault {
			return l.errf(n, "duplicate default map parameter")
		}
		ms.hasDefault = true
		ms.m.Default = val
	case strings.HasPrefix(key, "~"):
		caseless := strings.HasPrefix(key, "~*")
		src := key[1:]
		if caseless {
			src = key[2:]
		}
		re, err := l.compileRegex(n, src, caseless)
		if err != nil {
			return err
		}
		ms.m.Regexes = append(ms.m.Regexes, config.MapRegex{Regex: re, Value: val})
	default:
		// A leading backslash lets a key be literally "default",
		// "hostnames" or start with "~".
		key = strings.TrimPrefix(key, `\`)
		if ms.m.Hostnames {
			key = lower(key)
		}
		if prev, dup := ms.m.Exact[key]; dup {
			if prev.Raw == val.Raw {
				l.warn(n, "duplicate parameter \"%s\"", key)
				return nil
			}
			return l.errf(n, "conflicting parameter \"%s\"", key)
		}
		ms.m.Exact[key] = val
	}
	return nil
}
