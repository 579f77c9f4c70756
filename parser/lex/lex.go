// Package lex turns the text of one nginx configuration file into a tree of
// directives, following the tokenizer rules of nginx's configuration reader:
// whitespace separates words; `;` ends a directive, `{` opens its block and
// `}` closes it; `#` at the start of a word begins a comment that runs to
// the end of the line; a word starting with `"` or `'` is quoted and may
// contain any of those characters; a backslash escapes the next character
// in any word; `${name}` keeps its braces inside a word. It knows nothing of
// directive names except that a `*_by_lua_block` body is Lua, not nginx
// syntax, and is skipped the way the Lua module reads it.
//
// Why not gonginx's lexer: it drops everything after a stray top-level `}`,
// gives a block directive the line of its closing brace, keeps quotes and
// escapes in values, fails on a quoted string ending in `\\` and on braces
// inside Lua strings, and attaches no file name to its errors. The tests of
// this package show each of those cases.
package lex

import (
	"strconv"
)

// Node is one directive: its name, its arguments with quotes removed and
// escapes resolved, and, for a block directive, its children.
type Node struct {
	Name string
	Args []string
	// Line is where the directive's name stands; EndLine is where its
	// terminating `;` or `{` stands. nginx names EndLine in messages about
	// the directive, so diagnostics use it.
	Line    int
	EndLine int
	// CloseLine is where a block's closing `}` stands; nginx's checks that
	// run when a block ends (such as an upstream without servers) name it.
	CloseLine int
	// Block is true when the directive ended with `{`.
	Block bool
	// Children are the directives of the block, in source order.
	Children []*Node
	// Lua is the raw body of a `*_by_lua_block`, which is not nginx syntax.
	Lua string
	// Unclosed is true when the file ended, or a syntax error stopped
	// reading, before this block's `}`. Checks that nginx performs at the
	// end of a block must not run for it.
	Unclosed bool
}

// Error is a syntax error at a line of the file being read.
type Error struct {
	Msg  string
	Line int
}

func (e *Error) Error() string { return e.Msg + " at line " + strconv.Itoa(e.Line) }

// Parse reads a whole file. On a syntax error it returns the directives read
// before the error (the enclosing blocks marked Unclosed) together with the
// error, so that a caller can first report what nginx would have reported
// while reading those directives.
func Parse(data []byte) ([]*Node, *Error) {
	p := &parser{src: data, line: 1}
	top, err := p.block(nil)
	return top, err
}

type parser struct {
	src  []byte
	pos  int
	line int
}

// Token kinds returned by next.
const (
	tWord = iota
	tSemi
	tOpen
	tClose
	tEOF
)

// block reads directives until the `}` that closes parent (or the end of
// the file when parent is nil).
func (p *parser) block(parent *Node) ([]*Node, *Error) {
	var out []*Node
	var cur *Node // the directive whose words are being read
	for {
		kind, word, line, err := p.next()
		if err != nil {
			if cur != nil {
				// nginx only creates a directive at its terminator; a
				// half-read one is dropped.
				cur = nil
			}
			p.markUnclosed(parent)
			return out, err
		}
		switch kind {
		case tWord:
			if cur == nil {
				cur = &Node{Name: word, Line: line}
			} else {
				cur.Args = append(cur.Args, word)
			}
		case tSemi:
			if cur == nil {
				p.markUnclosed(parent)
				return out, &Error{`unexpected ";"`, line}
			}
			cur.EndLine = line
			out = append(out, cur)
			cur = nil
		case tOpen:
			if cur == nil {
				p.markUnclosed(parent)
				return out, &Error{`unexpected "{"`, line}
			}
			cur.EndLine = line
			cur.Block = true
			out = append(out, cur)
			n := cur
			cur = nil
			if isLuaBlock(n.Name) {
				if err := p.lua(n); err != nil {
					n.Unclosed = true
					p.markUnclosed(parent)
					return out, err
				}
				continue
			}
			kids, err := p.block(n)
			n.Children = kids
			if err != nil {
				p.markUnclosed(parent)
				return out, err
			}
		case tClose:
			if cur != nil || parent == nil {
				// gonginx returns success here and silently drops the
				// rest of the file; nginx rejects it.
				p.markUnclosed(parent)
				return out, &Error{`unexpected "}"`, line}
			}
			parent.CloseLine = line
			return out, nil
		case tEOF:
			if cur != nil {
				p.markUnclosed(parent)
				return out, &Error{`unexpected end of file, expecting ";" or "}"`, line}
			}
			if parent != nil {
				p.markUnclosed(parent)
				return out, &Error{`unexpected end of file, expecting "}"`, line}
			}
			return out, nil
		}
	}
}

func (p *parser) markUnclosed(n *Node) {
	if n != nil {
		n.Unclosed = true
	}
}

func isLuaBlock(name string) bool {
	const suffix = "_by_lua_block"
	return len(name) > len(suffix) && name[len(name)-len(suffix):] == suffix
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// next returns the next token and the line it starts on (for `;`, `{`
// and `}`, their own line).
func (p *parser) next() (kind int, word string, line int, err *Error) {
	src := p.src
	// Skip whitespace and comments.
	for p.pos < len(src) {
		c := src[p.pos]
		if c == '\n' {
			p.line++
			p.pos++
		} else if isSpace(c) {
			p.pos++
		} else if c == '#' {
			for p.pos < len(src) && src[p.pos] != '\n' {
				p.pos++
			}
		} else {
			break
		}
	}
	line = p.line
	if p.pos >= len(src) {
		return tEOF, "", line, nil
	}
	switch src[p.pos] {
	case ';':
		p.pos++
		return tSemi, "", line, nil
	case '{':
		p.pos++
		return tOpen, "", line, nil
	case '}':
		p.pos++
		return tClose, "", line, nil
	case '"', '\'':
		return p.quoted(line)
	}
	return p.bare(line)
}

// quoted reads a quoted word. The character after the closing quote must
// separate words, as nginx requires.
func (p *parser) quoted(line int) (int, string, int, *Error) {
	src := p.src
	q := src[p.pos]
	p.pos++
	start := p.pos
	for {
		if p.pos >= len(src) {
			return 0, "", p.line, &Error{`unexpected end of file, expecting ";" or "}"`, p.line}
		}
		c := src[p.pos]
		if c == '\\' && p.pos+1 < len(src) {
			// gonginx only knows `\"`: a string ending in `\\` runs
			// on past its closing quote there.
			if src[p.pos+1] == '\n' {
				p.line++
			}
			p.pos += 2
			continue
		}
		if c == '\n' {
			p.line++
		}
		if c == q {
			break
		}
		p.pos++
	}
	w := unescape(src[start:p.pos])
	p.pos++
	if p.pos < len(src) {
		switch c := src[p.pos]; {
		case isSpace(c), c == ';', c == '{':
		case c == ')':
			// nginx lets `)` follow a quoted word so that
			// `if ($a = "x")` reads; the `)` then starts the next word.
		default:
			return 0, "", p.line, &Error{`unexpected "` + string(c) + `"`, p.line}
		}
	}
	return tWord, w, line, nil
}

// bare reads an unquoted word, which ends at whitespace, `;` or `{`
// (except `{` right after `$`). `}`, `#` and quotes inside a word are
// ordinary characters, as in nginx.
func (p *parser) bare(line int) (int, string, int, *Error) {
	src := p.src
	start := p.pos
	escaped := false
	for p.pos < len(src) {
		c := src[p.pos]
		if c == '\\' && p.pos+1 < len(src) {
			escaped = true
			if src[p.pos+1] == '\n' {
				p.line++
			}
			p.pos += 2
			continue
		}
		if isSpace(c) || c == ';' {
			break
		}
		if c == '{' {
			if p.pos > start && src[p.pos-1] == '$' {
				p.pos++
				continue
			}
			break
		}
		p.pos++
	}
	if !escaped {
		return tWord, string(src[start:p.pos]), line, nil
	}
	return tWord, unescape(src[start:p.pos]), line, nil
}

// unescape resolves the escapes nginx resolves in every word: \" \' \\
// lose their backslash, \t \r \n become control characters, and any other
// backslash is kept (regexes rely on that: `\.` stays `\.`).
func unescape(b []byte) string {
	i := 0
	for i < len(b) && b[i] != '\\' {
		i++
	}
	if i == len(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	out = append(out, b[:i]...)
	for ; i < len(b); i++ {
		c := b[i]
		if c != '\\' || i+1 == len(b) {
			out = append(out, c)
			continue
		}
		switch b[i+1] {
		case '"', '\'', '\\':
			out = append(out, b[i+1])
			i++
		case 't':
			out = append(out, '\t')
			i++
		case 'r':
			out = append(out, '\r')
			i++
		case 'n':
			out = append(out, '\n')
			i++
		default:
			out = append(out, c)
		}
	}
	return string(out)
}
