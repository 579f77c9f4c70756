package parser

import (
	"strings"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// return, if, set, rewrite and break (nginx's rewrite module): steps run
// in order at server level before the location is chosen, then in the
// location.

var rewriteCommands = []command{
	{name: "return", ctx: cServer | cLoc | cSIF | cLIF, args: take12, status: statusImplemented, set: setReturn},
	{name: "if", ctx: cServer | cLoc, args: more1, block: true, status: statusImplemented, set: setIf},
	{name: "set", ctx: cServer | cLoc | cSIF | cLIF, args: take2, status: statusImplemented, set: setSet},
	{name: "rewrite", ctx: cServer | cLoc | cSIF | cLIF, args: take23, status: statusImplemented, set: setRewrite},
	{name: "break", ctx: cServer | cLoc | cSIF | cLIF, args: noArgs, status: statusImplemented, set: setBreak},
}

// changeableVars are the built-in variables `set` may assign, as nginx's
// NGX_HTTP_VAR_CHANGEABLE ones that gproxy has.
var changeableVars = map[string]bool{"args": true}

// setSet reads `set $name value` (ngx_http_rewrite_set).
func setSet(l *loader, b *block, n *lex.Node) error {
	name := n.Args[0]
	if len(name) < 2 || name[0] != '$' {
		return l.errf(n, "invalid variable name \"%s\"", name)
	}
	name = name[1:]
	if builtinVars[name] && !changeableVars[name] && !contains(config.OwnVariables, name) {
		return l.errf(n, "the duplicate \"%s\" variable", name)
	}
	v, terr := parseTemplate(n.Args[1])
	if terr != nil {
		return l.errf(n, "%s", terr.msg)
	}
	l.useVars(v)
	if !changeableVars[name] {
		l.http.mapVars[name] = true
	}
	*b.steps = append(*b.steps, config.RewriteStep{Set: &config.SetVar{Name: name, Value: v, Pos: l.pos(n)}})
	return nil
}

// setRewrite reads `rewrite regex replacement [last|break|redirect|permanent]`.
func setRewrite(l *loader, b *block, n *lex.Node) error {
	re, err := l.compileRegex(n, n.Args[0], false)
	if err != nil {
		return err
	}
	rw := &config.Rewrite{Regex: re, Pos: l.pos(n)}
	if len(n.Args) == 3 {
		switch n.Args[2] {
		case "last", "break", "redirect", "permanent":
			rw.Flag = n.Args[2]
		default:
			return l.errf(n, "invalid parameter \"%s\"", n.Args[2])
		}
	}
	t, terr := parseTemplate(n.Args[1])
	if terr != nil {
		return l.errf(n, "%s", terr.msg)
	}
	l.useVars(t)
	rw.Replacement = t
	*b.steps = append(*b.steps, config.RewriteStep{Rewrite: rw})
	return nil
}

func setBreak(l *loader, b *block, n *lex.Node) error {
	*b.steps = append(*b.steps, config.RewriteStep{Break: true})
	return nil
}

func setReturn(l *loader, b *block, n *lex.Node) error {
	r := &config.Return{Pos: l.pos(n)}
	text := ""
	if len(n.Args) == 1 {
		a := n.Args[0]
		if code, ok := parseNum(a); ok && code <= 999 {
			r.Code = code
		} else if strings.HasPrefix(a, "http://") || strings.HasPrefix(a, "https://") || strings.HasPrefix(a, "$scheme") {
			r.Code = 302
			text = a
		} else {
			return l.errf(n, "invalid return code \"%s\"", a)
		}
	} else {
		code, ok := parseNum(n.Args[0])
		if !ok || code > 999 {
			return l.errf(n, "invalid return code \"%s\"", n.Args[0])
		}
		r.Code = code
		text = n.Args[1]
	}
	if text != "" {
		t, terr := parseTemplate(text)
		if terr != nil {
			return l.errf(n, "%s", terr.msg)
		}
		l.useVars(t)
		r.Text = t
	}
	*b.steps = append(*b.steps, config.RewriteStep{Return: r})
	return nil
}

var ifOps = map[string]bool{"=": true, "!=": true, "~": true, "~*": true, "!~": true, "!~*": true}

func setIf(l *loader, b *block, n *lex.Node) error {
	cond, err := l.parseCond(n)
	if err != nil {
		return err
	}
	ifb := &config.If{Cond: cond, Pos: l.pos(n)}
	*b.steps = append(*b.steps, config.RewriteStep{If: ifb})
	kind := cSIF
	if b.kind == cLoc {
		kind = cLIF
	}
	// nginx gives the body of if a location configuration of its own, so
	// a setting there is not a duplicate of the same setting outside; its
	// settings (add_header, error_page, ...) apply when the condition
	// holds: mergeLocations computes them over the location's.
	lvl := newLevel()
	if kind == cLIF {
		l.ifLevels[b.loc.l] = append(l.ifLevels[b.loc.l], ifLevel{ifb, lvl})
	}
	return l.walk(n.Children, &block{kind: kind, srv: b.srv, loc: b.loc, lvl: lvl, steps: &ifb.Body, ifb: ifb})
}

// parseCond reads `( $var )`, `( $var OP value )` with the parentheses
// either standing alone or stuck to the first and last words.
func (l *loader) parseCond(n *lex.Node) (config.IfCond, error) {
	var c config.IfCond
	w := append([]string(nil), n.Args...)
	if !strings.HasPrefix(w[0], "(") {
		return c, l.errf(n, "invalid condition \"%s\"", w[0])
	}
	w[0] = w[0][1:]
	if w[0] == "" {
		w = w[1:]
	}
	if len(w) == 0 {
		return c, l.errf(n, "invalid condition \"%s\"", n.Args[0])
	}
	last := w[len(w)-1]
	if !strings.HasSuffix(last, ")") {
		// nginx names the last argument, after taking the "(" off the
		// first.
		bad := n.Args[len(n.Args)-1]
		if len(n.Args) == 1 {
			bad = bad[1:]
		}
		return c, l.errf(n, "invalid condition \"%s\"", bad)
	}
	w[len(w)-1] = last[:len(last)-1]
	if w[len(w)-1] == "" {
		w = w[:len(w)-1]
	}
	if len(w) == 0 {
		return c, l.errf(n, "invalid condition \"%s\"", n.Args[0])
	}
	switch w[0] {
	case "-f", "!-f", "-d", "!-d", "-e", "!-e", "-x", "!-x":
		return c, l.errf(n, `file checks in "if" are not supported by gproxy`)
	}
	if !strings.HasPrefix(w[0], "$") || len(w[0]) < 2 {
		return c, l.errf(n, "invalid condition \"%s\"", w[0])
	}
	left, terr := parseTemplate(w[0])
	if terr != nil {
		return c, l.errf(n, "%s", terr.msg)
	}
	l.useVars(left)
	c.Left = left
	if len(w) == 1 {
		return c, nil
	}
	if !ifOps[w[1]] {
		return c, l.errf(n, "unexpected \"%s\" in condition", w[1])
	}
	if len(w) != 3 {
		return c, l.errf(n, "invalid condition \"%s\"", w[0])
	}
	c.Op = w[1]
	switch c.Op {
	case "=", "!=":
		t, terr := parseTemplate(w[2])
		if terr != nil {
			return c, l.errf(n, "%s", terr.msg)
		}
		l.useVars(t)
		c.Right = t
	default:
		re, err := l.compileRegex(n, w[2], strings.HasSuffix(c.Op, "*"))
		if err != nil {
			return c, err
		}
		c.Regex = re
	}
	return c, nil
}

// ifLevel is an if block inside a location and what it sets.
type ifLevel struct {
	ifb *config.If
	lvl *level
}
