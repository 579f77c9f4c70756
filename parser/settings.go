package parser

import (
	"path/filepath"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// Setter builders for inherited settings, like nginx's ngx_conf_set_*_slot
// functions: each checks "is duplicate" at its level, then the value.

type setter = func(l *loader, b *block, n *lex.Node) error

func flagSetting(f func(s *config.Settings, v bool)) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		v, err := l.parseFlag(n, n.Args[0])
		if err != nil {
			return err
		}
		b.set(n.Name, func(s *config.Settings) { f(s, v) })
		return nil
	}
}

func msecSetting(f func(s *config.Settings, v time.Duration)) setter {
	return timeSetting(false, f)
}

func secSetting(f func(s *config.Settings, v time.Duration)) setter {
	return timeSetting(true, f)
}

func timeSetting(secOnly bool, f func(s *config.Settings, v time.Duration)) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		v, ok := parseTime(n.Args[0], secOnly)
		if !ok {
			return l.dirErr(n, "invalid value")
		}
		b.set(n.Name, func(s *config.Settings) { f(s, v) })
		return nil
	}
}

func numSetting(f func(s *config.Settings, v int)) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		v, ok := parseNum(n.Args[0])
		if !ok {
			return l.dirErr(n, "invalid number")
		}
		b.set(n.Name, func(s *config.Settings) { f(s, v) })
		return nil
	}
}

func sizeSetting(f func(s *config.Settings, v int)) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		v, ok := parseSize(n.Args[0])
		if !ok {
			return l.dirErr(n, "invalid value")
		}
		b.set(n.Name, func(s *config.Settings) { f(s, int(v)) })
		return nil
	}
}

func stringSetting(f func(s *config.Settings, v string)) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		v := n.Args[0]
		b.set(n.Name, func(s *config.Settings) { f(s, v) })
		return nil
	}
}

// pathSetting resolves a relative file name against the conf prefix, as
// nginx does for certificates and keys.
func pathSetting(f func(s *config.Settings, v string)) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		v := l.confPath(n.Args[0])
		b.set(n.Name, func(s *config.Settings) { f(s, v) })
		return nil
	}
}

// enumSetting accepts one of values.
func enumSetting(values []string, f func(s *config.Settings, v string)) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		v := n.Args[0]
		if !contains(values, v) {
			return l.errf(n, "invalid value \"%s\"", v)
		}
		b.set(n.Name, func(s *config.Settings) { f(s, v) })
		return nil
	}
}

// bitmaskSetting accepts any of values, each at most once in effect.
func bitmaskSetting(values []string, f func(s *config.Settings, v []string)) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		var vs []string
		for _, a := range n.Args {
			if !contains(values, a) {
				return l.errf(n, "invalid value \"%s\"", a)
			}
			if !contains(vs, a) {
				vs = append(vs, a)
			}
		}
		b.set(n.Name, func(s *config.Settings) { f(s, vs) })
		return nil
	}
}

// arraySetting appends each directive's value; a level that sets any
// replaces what it inherits.
func arraySetting(get func(s *config.Settings) *[]string, lowerCase bool) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		v := n.Args[0]
		if lowerCase {
			v = lower(v)
		}
		b.add(n.Name, func(s *config.Settings, fresh bool) {
			p := get(s)
			if fresh {
				*p = nil
			}
			*p = append(*p, v)
		})
		return nil
	}
}

func (l *loader) confPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.confPrefix, p)
}
