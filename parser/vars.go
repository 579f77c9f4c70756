package parser

import (
	"strings"

	"github.com/gproxy/gproxy/parser/config"
)

// builtinVars are the variables gproxy fills at run time. nginx knows more;
// a configuration naming one of those gets nginx's "unknown variable"
// error, because gproxy would otherwise log or send an empty value.
var builtinVars = map[string]bool{}

func init() {
	for _, v := range config.Variables {
		builtinVars[v] = true
	}
}

// knownVar says whether gproxy can fill variable name; maps are checked by
// the caller.
func knownVar(name string) bool {
	if builtinVars[name] {
		return true
	}
	for _, p := range config.VariablePrefixes {
		if strings.HasPrefix(name, p) && len(name) > len(p) {
			return true
		}
	}
	// Regex captures $1..$9 (and $0).
	return len(name) == 1 && name[0] >= '0' && name[0] <= '9'
}

// isVarChar is the set of characters of a variable name.
func isVarChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// templateError says what is wrong with a template's variable syntax, in
// nginx's words; badName is the text after `$` for callers (log_format)
// that word it differently.
type templateError struct {
	msg     string
	badName string
}

// parseTemplate splits s at its variables: `$name` or `${name}`.
func parseTemplate(s string) (config.Template, *templateError) {
	t := config.Template{Raw: s}
	if strings.IndexByte(s, '$') < 0 {
		if s != "" {
			t.Parts = []config.TemplatePart{{Literal: s}}
		}
		return t, nil
	}
	lit := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		if i > lit {
			t.Parts = append(t.Parts, config.TemplatePart{Literal: s[lit:i]})
		}
		j := i + 1
		brace := j < len(s) && s[j] == '{'
		if brace {
			j++
		}
		k := j
		if k < len(s) && s[k] >= '1' && s[k] <= '9' {
			// $1..$9 are one digit long, like nginx's captures.
			k++
		} else {
			for k < len(s) && isVarChar(s[k]) {
				k++
			}
		}
		if k == j {
			return t, &templateError{msg: `invalid variable name in "` + s + `"`, badName: s[i:min(len(s), k+1)]}
		}
		name := s[j:k]
		if brace {
			if k >= len(s) || s[k] != '}' {
				return t, &templateError{msg: `the closing bracket in "` + name + `" variable is missing`, badName: name}
			}
			k++
		}
		t.Parts = append(t.Parts, config.TemplatePart{Var: name})
		lit = k
		i = k - 1
	}
	if lit < len(s) {
		t.Parts = append(t.Parts, config.TemplatePart{Literal: s[lit:]})
	}
	return t, nil
}

// useVars records the variables of t in the order nginx indexes them, to
// be checked once the http block is read.
func (l *loader) useVars(t config.Template) {
	if l.http == nil {
		return
	}
	for _, p := range t.Parts {
		if p.Var != "" && !l.http.varSeen[p.Var] {
			l.http.varSeen[p.Var] = true
			l.http.varOrder = append(l.http.varOrder, p.Var)
		}
	}
}
