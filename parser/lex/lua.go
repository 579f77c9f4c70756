package lex

// lua skips the body of a `*_by_lua_block` up to its closing brace, reading
// it as Lua the way the Lua module does: braces inside strings, long
// brackets and comments do not count. gonginx counts every brace, so
// `content_by_lua_block { ngx.say("}") }` breaks it.
func (p *parser) lua(n *Node) *Error {
	src := p.src
	start := p.pos
	depth := 0
	for p.pos < len(src) {
		c := src[p.pos]
		switch {
		case c == '\n':
			p.line++
			p.pos++
		case c == '{':
			depth++
			p.pos++
		case c == '}':
			if depth == 0 {
				n.Lua = string(src[start:p.pos])
				p.pos++
				return nil
			}
			depth--
			p.pos++
		case c == '"' || c == '\'':
			p.pos++
			for p.pos < len(src) && src[p.pos] != c {
				switch src[p.pos] {
				case '\\':
					if p.pos+1 < len(src) && src[p.pos+1] == '\n' {
						p.line++
					}
					p.pos++
				case '\n':
					// An unfinished Lua string: the Lua module rejects it.
					return &Error{"Lua code block missing the closing quote", p.line}
				}
				p.pos++
			}
			if p.pos >= len(src) {
				return &Error{`unexpected end of file, expecting "}"`, p.line}
			}
			p.pos++
		case c == '-' && p.pos+1 < len(src) && src[p.pos+1] == '-':
			p.pos += 2
			if level, ok := longOpen(src, p.pos); ok {
				if err := p.skipLong(level); err != nil {
					return err
				}
				continue
			}
			for p.pos < len(src) && src[p.pos] != '\n' {
				p.pos++
			}
		case c == '[':
			if level, ok := longOpen(src, p.pos); ok {
				if err := p.skipLong(level); err != nil {
					return err
				}
				continue
			}
			p.pos++
		default:
			p.pos++
		}
	}
	return &Error{`unexpected end of file, expecting "}"`, p.line}
}

// longOpen reports whether a Lua long bracket `[[` or `[==[` starts at i,
// and its level (number of `=`).
func longOpen(src []byte, i int) (int, bool) {
	if i >= len(src) || src[i] != '[' {
		return 0, false
	}
	j := i + 1
	for j < len(src) && src[j] == '=' {
		j++
	}
	if j < len(src) && src[j] == '[' {
		return j - i - 1, true
	}
	return 0, false
}

// skipLong skips a long bracket of the given level starting at p.pos.
func (p *parser) skipLong(level int) *Error {
	src := p.src
	p.pos += level + 2
	for p.pos < len(src) {
		c := src[p.pos]
		if c == '\n' {
			p.line++
		}
		if c == ']' {
			j := p.pos + 1
			for j < len(src) && src[j] == '=' {
				j++
			}
			if j < len(src) && src[j] == ']' && j-p.pos-1 == level {
				p.pos = j + 1
				return nil
			}
		}
		p.pos++
	}
	return &Error{`unexpected end of file, expecting "}"`, p.line}
}
