package accesslog

import (
	"fmt"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/route"
)

// escaping is a log_format's escape= mode.
type escaping uint8

const (
	escDefault escaping = iota // `"`, `\`, bytes < 0x20 and >= 0x7f as \xHH; "-" when not found
	escJSON                    // JSON string content; "" when not found
	escNone                    // as is; "" when not found
)

var escapings = map[string]escaping{"": escDefault, "default": escDefault, "json": escJSON, "none": escNone}

// escLen[mode][c] is how many bytes c takes once escaped.
var escLen = func() (t [3][256]uint8) {
	for c := 0; c < 256; c++ {
		t[escDefault][c], t[escJSON][c], t[escNone][c] = 1, 1, 1
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			t[escDefault][c] = 4
		}
		switch {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
			t[escJSON][c] = 2
		case c < 0x20:
			t[escJSON][c] = 6
		}
	}
	return t
}()

const hexUpper = "0123456789ABCDEF"

// jsonShort are the control characters JSON writes as a backslash and a
// letter.
var jsonShort = [256]byte{'"': '"', '\\': '\\', '\n': 'n', '\r': 'r', '\t': 't', '\b': 'b', '\f': 'f'}

// op is one piece of a compiled template: a literal or a variable.
type op struct {
	lit   string
	v     route.Var
	isVar bool
}

// format is a compiled log_format.
type format struct {
	name string
	esc  escaping
	ops  []op
}

// compile resolves every variable of tpl once against t.
func compile(tpl config.Template, t *route.Table, what string, pos config.Pos) ([]op, error) {
	ops := make([]op, 0, len(tpl.Parts))
	for _, p := range tpl.Parts {
		if p.Var == "" {
			ops = append(ops, op{lit: p.Literal})
			continue
		}
		v, ok := t.Var(p.Var)
		if !ok {
			return nil, fmt.Errorf("unknown %q variable in %s%s", p.Var, what, where(pos))
		}
		ops = append(ops, op{v: v, isVar: true})
	}
	return ops, nil
}

// appendLine appends one log line for r, with its newline.
func (f *format) appendLine(dst []byte, t *route.Table, r *route.Request) []byte {
	for i := range f.ops {
		o := &f.ops[i]
		if !o.isVar {
			dst = append(dst, o.lit...)
			continue
		}
		n := len(dst)
		var found bool
		dst, found = t.AppendVar(dst, o.v, r)
		switch {
		case !found && f.esc == escDefault:
			dst = append(dst, '-')
		case f.esc != escNone:
			dst = escape(dst, n, f.esc)
		}
	}
	return append(dst, '\n')
}

// escape escapes b[from:] in place, growing b as needed. It works from the
// end backwards so that no second buffer is needed: the write position is
// never before the read position.
func escape(b []byte, from int, mode escaping) []byte {
	lens := &escLen[mode]
	first := from
	for first < len(b) && lens[b[first]] == 1 { // the common case: nothing to escape
		first++
	}
	if first == len(b) {
		return b
	}
	extra := 0
	for _, c := range b[first:] {
		extra += int(lens[c]) - 1
	}
	end := len(b)
	b = append(b, make([]byte, extra)...) // does not allocate for the temporary
	w := len(b)
	// Bytes before the first escaped one stay where they are.
	for i := end - 1; i >= first; i-- {
		c := b[i]
		switch lens[c] {
		case 1:
			w--
			b[w] = c
		case 2:
			w -= 2
			b[w], b[w+1] = '\\', jsonShort[c]
		case 4:
			w -= 4
			b[w], b[w+1], b[w+2], b[w+3] = '\\', 'x', hexUpper[c>>4], hexUpper[c&15]
		case 6:
			w -= 6
			b[w], b[w+1], b[w+2], b[w+3], b[w+4], b[w+5] = '\\', 'u', '0', '0', hexUpper[c>>4], hexUpper[c&15]
		}
	}
	return b
}

// condTrue evaluates an if= condition: false when its value is empty or
// "0". Variables that are not found count as empty.
func condTrue(ops []op, t *route.Table, r *route.Request, scratch []byte) ([]byte, bool) {
	b := scratch[:0]
	for i := range ops {
		if ops[i].isVar {
			b, _ = t.AppendVar(b, ops[i].v, r)
		} else {
			b = append(b, ops[i].lit...)
		}
	}
	return b, len(b) > 0 && !(len(b) == 1 && b[0] == '0')
}

// where is " in FILE:LINE" for messages, or "" for values no directive
// set (the default logs/access.log).
func where(p config.Pos) string {
	if p.File == "" {
		return ""
	}
	return fmt.Sprintf(" in %s:%d", p.File, p.Line)
}
