package parser

import (
	"math"
	"strings"
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
	return numSettingIn(0, math.MaxInt, f)
}

// numSettingIn is ngx_conf_set_num_slot with bounds (nginx's
// ngx_conf_check_num_bounds): a number outside [lo, hi] is an error.
func numSettingIn(lo, hi int, f func(s *config.Settings, v int)) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		v, ok := parseNum(n.Args[0])
		if !ok {
			return l.dirErr(n, "invalid number")
		}
		if v < lo || v > hi {
			return l.errf(n, "value must be between %d and %d", lo, hi)
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

// enumSetting accepts one of values, without regard to case, as
// ngx_conf_set_enum_slot does.
func enumSetting(values []string, f func(s *config.Settings, v string)) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		v, ok := oneOf(values, n.Args[0])
		if !ok {
			return l.errf(n, "invalid value \"%s\"", n.Args[0])
		}
		b.set(n.Name, func(s *config.Settings) { f(s, v) })
		return nil
	}
}

// oneOf finds v among values without regard to case and returns the
// spelling of values.
func oneOf(values []string, v string) (string, bool) {
	for _, x := range values {
		if strings.EqualFold(x, v) {
			return x, true
		}
	}
	return "", false
}

// bitmaskSetting accepts any of values (without regard to case) as
// ngx_conf_set_bitmask_slot does: the directive may be repeated at one
// level, each adding to the set, and a value already in the set is a
// warning, not an error.
func bitmaskSetting(values []string, f func(s *config.Settings, v []string)) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		vs := b.lvl.bits[n.Name]
		for _, a := range n.Args {
			v, ok := oneOf(values, a)
			if !ok {
				return l.errf(n, "invalid value \"%s\"", a)
			}
			if contains(vs, v) {
				l.warn(n, "duplicate value \"%s\"", a)
				continue
			}
			vs = append(vs, v)
		}
		if b.lvl.bits == nil {
			b.lvl.bits = map[string][]string{}
		}
		b.lvl.bits[n.Name] = vs
		if f != nil {
			snapshot := vs[:len(vs):len(vs)]
			b.set(n.Name, func(s *config.Settings) { f(s, snapshot) })
		}
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

// confPath resolves a file name against the conf prefix, as nginx does
// for certificates and keys.
func (l *loader) confPath(p string) string { return fullName(l.confPrefix, p) }
