package route

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/gproxy/gproxy/parser/config"
)

// mapVar is a compiled `map $source $target { ... }`. gproxy evaluates a map
// each time its target is read (as nginx does for `volatile` maps); nginx
// caches non-volatile values per request, which only differs for sources
// that change during a request, such as $msec.
type mapVar struct {
	cfg       *config.Map
	hostnames bool
	exact     map[string]config.Template // lower-case keys (no hostnames)
	hosts     hostTable[config.Template] // with hostnames
}

func (t *Table) buildMaps(maps []*config.Map) error {
	for _, m := range maps {
		if v, dup := byName[m.Target]; (dup && v.flags&varOwn == 0) || t.maps[m.Target] != nil {
			return fmt.Errorf("the duplicate %q variable in %s", m.Target, posString(m.Pos))
		}
		mv := &mapVar{cfg: m, hostnames: m.Hostnames}
		if m.Hostnames {
			mv.hosts = newHostTable[config.Template]()
			for k, v := range m.Exact {
				mv.hosts.add(strings.ToLower(strings.TrimSuffix(k, ".")), v)
			}
		} else {
			mv.exact = make(map[string]config.Template, len(m.Exact))
			for k, v := range m.Exact {
				mv.exact[strings.ToLower(k)] = v
			}
		}
		for _, re := range m.Regexes {
			if re.Regex == nil {
				return fmt.Errorf("map regex without compiled expression in %s", posString(m.Pos))
			}
		}
		t.maps[m.Target] = mv
	}
	return t.checkMapCycles()
}

// appendMap appends the value of a map target: the source value is looked
// up exactly (case-insensitively; with `hostnames`, also as wildcard names,
// without a trailing dot), then against the regexes in order, else the
// default. An empty source skips straight to the default, as in nginx.
func (t *Table) appendMap(dst []byte, m *mapVar, r *Request, depth int) []byte {
	src := t.expand(m.cfg.Source, r, depth)
	if m.hostnames && strings.HasSuffix(src, ".") {
		src = src[:len(src)-1]
	}
	// An empty source is a key like any other (`"" none;` matches a
	// variable that is empty or not found, as in nginx).
	if src != "" || !m.hostnames {
		key := src
		if hasUpper(key) {
			key = strings.ToLower(key)
		}
		var v config.Template
		var ok bool
		if m.hostnames {
			v, ok = m.hosts.lookup(key, nil, nil)
		} else {
			v, ok = m.exact[key]
		}
		if ok {
			return t.appendExpand(dst, v, r, depth)
		}
		for _, x := range m.cfg.Regexes {
			if t.matchString(x.Regex, src, r) {
				return t.appendExpand(dst, x.Value, r, depth)
			}
		}
	}
	return t.appendExpand(dst, m.cfg.Default, r, depth)
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// checkMapCycles rejects maps whose values depend on themselves, which
// nginx reports at run time as "cycle while evaluating variable".
func (t *Table) checkMapCycles() error {
	const (
		unvisited = iota
		active
		done
	)
	state := map[*mapVar]int{}
	var visit func(m *mapVar) error
	visit = func(m *mapVar) error {
		switch state[m] {
		case active:
			return fmt.Errorf("cycle while evaluating variable %q in %s", m.cfg.Target, posString(m.cfg.Pos))
		case done:
			return nil
		}
		state[m] = active
		for _, tpl := range mapTemplates(m.cfg) {
			for _, p := range tpl.Parts {
				if dep, ok := t.maps[p.Var]; ok && p.Var != "" {
					if err := visit(dep); err != nil {
						return err
					}
				}
			}
		}
		state[m] = done
		return nil
	}
	for _, m := range t.maps {
		if err := visit(m); err != nil {
			return err
		}
	}
	return nil
}

func mapTemplates(m *config.Map) []config.Template {
	out := []config.Template{m.Source, m.Default}
	for _, v := range m.Exact {
		out = append(out, v)
	}
	for _, x := range m.Regexes {
		out = append(out, x.Value)
	}
	return out
}

// matchString matches a regex against s. When some template of the
// configuration reads captures, the captures are kept in r ($1.., named
// captures); otherwise it is a plain, allocation-free match. t and r may be
// nil.
func (t *Table) matchString(re *regexp.Regexp, s string, r *Request) bool {
	if t == nil || r == nil || !t.needCaps || re.NumSubexp() == 0 {
		return re.MatchString(s)
	}
	m := re.FindStringSubmatchIndex(s)
	if m == nil {
		return false
	}
	r.capSubj, r.caps = s, m
	for i, name := range re.SubexpNames() {
		slot, ok := t.named[name]
		if name == "" || !ok || m[2*i] < 0 {
			continue
		}
		if r.namedCaps == nil {
			r.namedCaps = make([]string, len(t.named))
		}
		r.namedCaps[slot] = s[m[2*i]:m[2*i+1]]
	}
	return true
}
